//! Tokenization: `tokenizer.json` when the checkpoint has one, else BERT WordPiece built from
//! `vocab.txt` (BioBERT and SciBERT ship only that), both through the `tokenizers` crate so ids
//! match Hugging Face exactly.

use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// Where the casing decision came from, for the manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum CasingSource {
    TokenizerJson,
    CommandLine,
    TokenizerConfig,
    Card,
    VocabGuess,
}

/// One tokenized text: ids (with [CLS]/[SEP]) and whether it was cut at the max length.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizedText {
    pub ids: Vec<u32>,
    pub truncated: bool,
}

pub struct TextTokenizer {
    inner: Tokenizer,
    /// Same pipeline without truncation, to measure how much context a text needs.
    untruncated: Tokenizer,
    pub max_length: usize,
    pub lowercase: Option<bool>,
    pub casing_source: CasingSource,
    pub source: PathBuf,
    /// Things the user should know about how the tokenizer was set up (an ignored casing flag, a
    /// guessed casing); the caller decides whether and where to show them.
    pub warnings: Vec<String>,
}

impl TextTokenizer {
    /// Load from a model directory. `lowercase_override` (from `--lowercase/--cased`) wins for
    /// vocab.txt tokenizers; `card_lowercase` is the model card's casing.
    pub fn from_dir(
        dir: &Path,
        max_length: usize,
        lowercase_override: Option<bool>,
        card_lowercase: Option<bool>,
    ) -> Result<Self> {
        let tj = dir.join("tokenizer.json");
        let vocab = dir.join("vocab.txt");
        if tj.exists() {
            let mut warnings = Vec::new();
            if lowercase_override.is_some() {
                warnings.push(format!(
                    "{} defines its own normalizer; --lowercase/--cased is ignored",
                    tj.display()
                ));
            }
            let inner = Tokenizer::from_file(&tj)
                .map_err(|e| anyhow!("{}: cannot load tokenizer.json: {e}", tj.display()))?;
            return Self::finish(
                inner,
                max_length,
                None,
                CasingSource::TokenizerJson,
                tj,
                warnings,
            );
        }
        if !vocab.exists() {
            bail!(
                "{}: no tokenizer found: expected tokenizer.json or vocab.txt in this directory",
                dir.display()
            );
        }
        let mut warnings = Vec::new();
        let (lowercase, source) = if let Some(l) = lowercase_override {
            (l, CasingSource::CommandLine)
        } else if let Some(l) = do_lower_case_from_config(dir)? {
            (l, CasingSource::TokenizerConfig)
        } else if let Some(l) = card_lowercase {
            (l, CasingSource::Card)
        } else {
            let cased = vocab_looks_cased(&vocab)?;
            warnings.push(format!(
                "{}: casing not declared (no tokenizer_config.json, card or --lowercase/--cased); \
                 the vocabulary looks {}, so using {}",
                vocab.display(),
                if cased { "cased" } else { "uncased" },
                if cased { "--cased" } else { "--lowercase" }
            ));
            (!cased, CasingSource::VocabGuess)
        };
        let inner = wordpiece_tokenizer(&vocab, lowercase)?;
        Self::finish(inner, max_length, Some(lowercase), source, vocab, warnings)
    }

    fn finish(
        mut inner: Tokenizer,
        max_length: usize,
        lowercase: Option<bool>,
        casing_source: CasingSource,
        source: PathBuf,
        warnings: Vec<String>,
    ) -> Result<Self> {
        if max_length < 2 {
            bail!("max length {max_length} is too small: [CLS] and [SEP] alone take 2 tokens");
        }
        // Shipped tokenizer.json files may pad to a fixed length (MiniLM pads to 128): padding is
        // ours to do, per batch, so turn it off; truncation follows the model's max length.
        inner.with_padding(None);
        let mut untruncated = inner.clone();
        untruncated
            .with_truncation(None)
            .map_err(|e| anyhow!("{}: {e}", source.display()))?;
        inner
            .with_truncation(Some(TruncationParams {
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| anyhow!("{}: cannot set truncation: {e}", source.display()))?;
        Ok(Self {
            inner,
            untruncated,
            max_length,
            lowercase,
            casing_source,
            source,
            warnings,
        })
    }

    pub fn encode(&self, text: &str) -> Result<TokenizedText> {
        let enc = self
            .inner
            .encode_fast(text, true)
            .map_err(|e| anyhow!("tokenizer {}: {e}", self.source.display()))?;
        Ok(TokenizedText {
            truncated: !enc.get_overflowing().is_empty(),
            ids: enc.get_ids().to_vec(),
        })
    }

    /// Tokenize many texts in parallel (rayon, inside `tokenizers`).
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<TokenizedText>> {
        let encs = self
            .inner
            .encode_batch_fast(texts.to_vec(), true)
            .map_err(|e| anyhow!("tokenizer {}: {e}", self.source.display()))?;
        Ok(encs
            .into_iter()
            .map(|e| TokenizedText {
                truncated: !e.get_overflowing().is_empty(),
                ids: e.get_ids().to_vec(),
            })
            .collect())
    }

    /// Token count of `text` with special tokens, without truncation: how much context it needs.
    pub fn count_untruncated(&self, text: &str) -> Result<usize> {
        Ok(self
            .untruncated
            .encode_fast(text, true)
            .map_err(|e| anyhow!("{e}"))?
            .len())
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}

/// BERT's WordPiece pipeline, as `BertTokenizerFast` builds it from a vocab.txt.
pub fn wordpiece_tokenizer(vocab: &Path, lowercase: bool) -> Result<Tokenizer> {
    let vocab_str = vocab
        .to_str()
        .with_context(|| format!("{}: path is not UTF-8", vocab.display()))?;
    let wp = WordPiece::from_file(vocab_str)
        .unk_token("[UNK]".into())
        .continuing_subword_prefix("##".into())
        .max_input_chars_per_word(100)
        .build()
        .map_err(|e| anyhow!("{}: cannot read WordPiece vocabulary: {e}", vocab.display()))?;
    let id = |tok: &str| -> Result<u32> {
        wp_token_id(&wp, tok).with_context(|| {
            format!(
                "{}: vocabulary has no {tok} token; is this a BERT vocab.txt?",
                vocab.display()
            )
        })
    };
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    id("[UNK]")?;
    let specials: Vec<tokenizers::AddedToken> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .filter(|s| wp_token_id(&wp, s).is_some())
        .map(|s| tokenizers::AddedToken::from(s.to_string(), true))
        .collect();
    let mut t = Tokenizer::new(wp);
    // strip_accents = None follows `lowercase`, exactly as in BertTokenizerFast.
    t.with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)))
        .map_err(|e| anyhow!("{e}"))?;
    t.with_pre_tokenizer(Some(BertPreTokenizer));
    t.with_post_processor(Some(BertProcessing::new(
        ("[SEP]".into(), sep),
        ("[CLS]".into(), cls),
    )));
    t.with_decoder(Some(WordPieceDecoder::default()));
    // BertTokenizerFast registers the special tokens as added tokens, so a literal "[UNK]" or
    // "[SEP]" in the text maps to its id instead of being split into word pieces.
    let _ = t.add_special_tokens(specials);
    Ok(t)
}

fn wp_token_id(wp: &WordPiece, tok: &str) -> Option<u32> {
    use tokenizers::Model;
    wp.token_to_id(tok)
}

fn do_lower_case_from_config(dir: &Path) -> Result<Option<bool>> {
    let path = dir.join("tokenizer_config.json");
    let Some(v) = super::config::optional_json(&path)? else {
        return Ok(None);
    };
    Ok(v.get("do_lower_case").and_then(|x| x.as_bool()))
}

/// A cased BERT vocabulary has many whole-word entries with capitals ("The", "Protein").
fn vocab_looks_cased(vocab: &Path) -> Result<bool> {
    let text = std::fs::read_to_string(vocab)
        .with_context(|| format!("{}: cannot read", vocab.display()))?;
    let (mut words, mut capital) = (0usize, 0usize);
    for line in text.lines() {
        if line.starts_with('[') || line.starts_with("##") {
            continue;
        }
        words += 1;
        if line.chars().any(|c| c.is_uppercase()) {
            capital += 1;
        }
    }
    Ok(words > 0 && capital * 20 > words)
}
