//! Batching, kept apart from the model math (as in text-embeddings-inference): texts sorted by
//! token length are cut into batches whose padded size stays under a token budget.

/// Batches of indices into the original inputs. Deterministic for the same lengths, so a resumed
/// job forms exactly the same batches as an uninterrupted one.
#[derive(Debug, Clone)]
pub struct TokenBudgetBatcher {
    /// Max padded tokens (batch size × longest sequence) per batch.
    pub budget: usize,
    /// Max sequences per batch, whatever their length.
    pub max_batch: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PaddingStats {
    pub real_tokens: usize,
    pub padded_tokens: usize,
}

impl PaddingStats {
    /// Fraction of processed tokens that are padding.
    pub fn padding_fraction(&self) -> f64 {
        if self.padded_tokens == 0 {
            0.0
        } else {
            (self.padded_tokens - self.real_tokens) as f64 / self.padded_tokens as f64
        }
    }
}

impl TokenBudgetBatcher {
    pub fn new(budget: usize, max_batch: usize) -> Self {
        Self {
            budget: budget.max(1),
            max_batch: max_batch.max(1),
        }
    }

    /// Sort by length (longest first: the first batch shows the worst-case memory at once), ties
    /// by input index, then greedily fill batches while `count × longest ≤ budget`.
    pub fn batches(&self, lengths: &[usize]) -> (Vec<Vec<usize>>, PaddingStats) {
        let mut order: Vec<usize> = (0..lengths.len()).collect();
        order.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]).then(a.cmp(&b)));
        let mut out: Vec<Vec<usize>> = vec![];
        let mut stats = PaddingStats::default();
        let mut cur: Vec<usize> = vec![];
        let mut cur_max = 0usize;
        for i in order {
            let l = lengths[i].max(1);
            let new_max = cur_max.max(l);
            if !cur.is_empty()
                && ((cur.len() + 1) * new_max > self.budget || cur.len() >= self.max_batch)
            {
                stats.padded_tokens += cur.len() * cur_max;
                out.push(std::mem::take(&mut cur));
                cur_max = 0;
            }
            cur_max = cur_max.max(l);
            stats.real_tokens += lengths[i];
            cur.push(i);
        }
        if !cur.is_empty() {
            stats.padded_tokens += cur.len() * cur_max;
            out.push(cur);
        }
        (out, stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn batches_respect_budget_and_cover_all() {
        let lengths: Vec<usize> = (0..1000).map(|i| 5 + (i * 37 % 250)).collect();
        let b = TokenBudgetBatcher::new(4096, 256);
        let (batches, stats) = b.batches(&lengths);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());
        for batch in &batches {
            let m = batch.iter().map(|&i| lengths[i]).max().unwrap();
            assert!(batch.len() == 1 || batch.len() * m <= 4096);
        }
        assert_eq!(stats.real_tokens, lengths.iter().sum::<usize>());
        // sorted batching of 1000 mixed lengths pads little
        assert!(
            stats.padding_fraction() < 0.05,
            "{}",
            stats.padding_fraction()
        );
    }
    #[test]
    fn hand_computed_padding() {
        // lengths 3,4,2 budget 8 → sorted 4,3 fit (2×4 = 8), the 2 starts a new batch
        let (batches, stats) = TokenBudgetBatcher::new(8, 10).batches(&[3, 4, 2]);
        assert_eq!(batches, vec![vec![1, 0], vec![2]]);
        assert_eq!(
            stats,
            PaddingStats {
                real_tokens: 9,
                padded_tokens: 10
            }
        );
    }
}
