//! Progress bars on stderr (rate + ETA), silenced by `--quiet`.
//!
//! A caller that draws progress itself (the Python package's notebook bars) runs the work
//! inside [`observe`]: bars made on that thread are then hidden, and [`observed`] reads the
//! newest one's position and length (from a callback the work already calls between batches).

use std::cell::RefCell;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

thread_local! {
    /// `Some(newest bar)` while [`observe`] runs on this thread.
    static OBSERVED: RefCell<Option<Option<ProgressBar>>> = const { RefCell::new(None) };
    /// `Some(warnings kept)` while [`observe`] runs on this thread.
    static WARNINGS: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
    /// `Some(notes kept)` while [`observe`] runs on this thread.
    static NOTES: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// A progress bar over `total` items named `unit`; hidden when `quiet` (or inside [`observe`]).
pub fn bar(total: u64, unit: &str, quiet: bool) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let observed = OBSERVED.with(|o| match &mut *o.borrow_mut() {
        Some(slot) => {
            *slot = Some(pb.clone());
            true
        }
        None => false,
    });
    if quiet || observed {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    let template = format!(
        "{{spinner}} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} {unit} ({{per_sec}}, ETA {{eta}}) {{msg}}"
    );
    pb.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb
}

/// A note for the user from library work (a guessed casing, an ignored flag): on stderr, above
/// any bar, unless `quiet`; inside [`observe`] kept for [`take_warnings`] instead, so the front
/// end that observes decides how to show it (the Python package logs it).
pub fn warn(quiet: bool, message: &str) {
    if !keep(&WARNINGS, message) && !quiet {
        eprintln!("warning: {message}");
    }
}

/// A step of library work worth telling the user ("reading X", "training the MLP"): on stderr
/// unless `quiet`; inside [`observe`] kept for [`take_notes`], so the front end that observes
/// decides how to show it (the Python package logs it).
pub fn note(quiet: bool, message: &str) {
    if !keep(&NOTES, message) && !quiet {
        eprintln!("{message}");
    }
}

/// Push `message` onto `list` when [`observe`] runs on this thread; false outside it.
fn keep(list: &'static std::thread::LocalKey<Kept>, message: &str) -> bool {
    list.with(|w| match &mut *w.borrow_mut() {
        Some(list) => {
            list.push(message.to_string());
            true
        }
        None => false,
    })
}

type Kept = RefCell<Option<Vec<String>>>;

/// Inside [`observe`]: the warnings [`warn`] kept since the last call.
pub fn take_warnings() -> Vec<String> {
    take(&WARNINGS)
}

/// Inside [`observe`]: the notes [`note`] kept since the last call.
pub fn take_notes() -> Vec<String> {
    take(&NOTES)
}

fn take(list: &'static std::thread::LocalKey<Kept>) -> Vec<String> {
    list.with(|w| {
        w.borrow_mut()
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    })
}

/// Run `f` with the progress bars it makes on this thread hidden and readable through
/// [`observed`] (for callers that show progress their own way).
pub fn observe<T>(f: impl FnOnce() -> T) -> T {
    struct Reset(
        Option<Option<ProgressBar>>,
        Option<Vec<String>>,
        Option<Vec<String>>,
    );
    impl Drop for Reset {
        fn drop(&mut self) {
            let (bar, warnings, notes) = (self.0.take(), self.1.take(), self.2.take());
            OBSERVED.with(|o| *o.borrow_mut() = bar);
            WARNINGS.with(|w| *w.borrow_mut() = warnings);
            NOTES.with(|n| *n.borrow_mut() = notes);
        }
    }
    let prev = OBSERVED.with(|o| o.borrow_mut().replace(None));
    let prev_warnings = WARNINGS.with(|w| w.borrow_mut().replace(vec![]));
    let prev_notes = NOTES.with(|n| n.borrow_mut().replace(vec![]));
    let _reset = Reset(prev, prev_warnings, prev_notes);
    f()
}

/// Inside [`observe`]: the newest bar's (position, length), once a bar has been made.
pub fn observed() -> Option<(u64, u64)> {
    OBSERVED.with(|o| {
        o.borrow()
            .as_ref()
            .and_then(|b| b.as_ref())
            .map(|b| (b.position(), b.length().unwrap_or(0)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observe_reads_the_newest_bar_and_resets() {
        assert_eq!(observed(), None);
        observe(|| {
            assert_eq!(observed(), None);
            let pb = bar(10, "items", false);
            assert!(pb.is_hidden());
            pb.inc(3);
            assert_eq!(observed(), Some((3, 10)));
            let pb2 = bar(5, "items", false);
            pb2.inc(1);
            assert_eq!(observed(), Some((1, 5)));
        });
        assert_eq!(observed(), None);
    }

    #[test]
    fn warnings_inside_observe_are_kept_for_the_caller() {
        observe(|| {
            warn(false, "casing guessed");
            assert_eq!(take_warnings(), vec!["casing guessed".to_string()]);
            assert!(take_warnings().is_empty());
        });
        assert!(take_warnings().is_empty());
    }

    #[test]
    fn notes_inside_observe_are_kept_apart_from_warnings() {
        observe(|| {
            note(false, "reading x.h5ad");
            warn(false, "casing guessed");
            assert_eq!(take_notes(), vec!["reading x.h5ad".to_string()]);
            assert_eq!(take_warnings(), vec!["casing guessed".to_string()]);
            assert!(take_notes().is_empty());
        });
        assert!(take_notes().is_empty());
    }
}
