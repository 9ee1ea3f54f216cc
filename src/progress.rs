//! Progress of long library work (embedding batches, reading cells, training epochs). By default a
//! bar on stderr with rate and ETA, hidden by `--quiet`; a front end that draws its own (the
//! Python package feeds tqdm) installs a [`Sink`] around a call with [`with_sink`], and every bar
//! the library makes during that call reports to it instead of drawing.

use std::cell::RefCell;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What a bar reports to a [`Sink`].
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A bar over `total` items named `unit` starts.
    Start { total: u64, unit: String },
    /// `n` more items are done.
    Advance(u64),
    /// A line for the user beside the bar ("resuming: 3/7 chunks …").
    Message(String),
    /// The bar is finished (or dropped).
    Finish,
}

/// Receives every [`Event`] of the bars made inside [`with_sink`]; called from worker threads too.
pub type Sink = Arc<dyn Fn(&Event) + Send + Sync>;

thread_local! {
    static SINK: RefCell<Option<Sink>> = const { RefCell::new(None) };
}

/// Run `f` with `sink` receiving the progress of every bar created on this thread meanwhile.
pub fn with_sink<T>(sink: Sink, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<Sink>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let old = self.0.take();
            SINK.with(|s| *s.borrow_mut() = old);
        }
    }
    let _restore = Restore(SINK.with(|s| s.borrow_mut().replace(sink)));
    f()
}

/// A progress bar: drawn on stderr, hidden, or reported to the installed [`Sink`].
pub struct Bar {
    pb: ProgressBar,
    sink: Option<Sink>,
}

/// A progress bar over `total` items named `unit`; hidden when `quiet` (a sink installed with
/// [`with_sink`] receives it whatever `quiet` says: the front end that installed it decides).
pub fn bar(total: u64, unit: &str, quiet: bool) -> Bar {
    let sink = SINK.with(|s| s.borrow().clone());
    let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if quiet || sink.is_some() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    let template = format!(
        "{{spinner}} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} {unit} ({{per_sec}}, ETA {{eta}}) {{msg}}"
    );
    pb.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if let Some(s) = &sink {
        s(&Event::Start {
            total,
            unit: unit.to_string(),
        });
    }
    Bar { pb, sink }
}

impl Bar {
    pub fn inc(&self, n: u64) {
        self.pb.inc(n);
        if let Some(s) = &self.sink {
            s(&Event::Advance(n));
        }
    }

    /// Jump to `pos` (a resumed job's finished items); reported as an advance.
    pub fn set_position(&self, pos: u64) {
        let before = self.pb.position();
        self.pb.set_position(pos);
        if let Some(s) = &self.sink {
            if pos > before {
                s(&Event::Advance(pos - before));
            }
        }
    }

    pub fn position(&self) -> u64 {
        self.pb.position()
    }

    /// Text shown after the bar (e.g. the current epoch's loss); not reported to a sink.
    pub fn set_message(&self, msg: impl Into<std::borrow::Cow<'static, str>>) {
        self.pb.set_message(msg);
    }

    /// A line above the bar, or a [`Event::Message`].
    pub fn println(&self, line: impl AsRef<str>) {
        match &self.sink {
            Some(s) => s(&Event::Message(line.as_ref().to_string())),
            None => self.pb.println(line),
        }
    }

    pub fn finish_and_clear(&self) {
        self.pb.finish_and_clear();
        if let Some(s) = &self.sink {
            s(&Event::Finish);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn a_sink_receives_every_event_and_is_removed_after() {
        let seen = Arc::new(Mutex::new(vec![]));
        let s2 = seen.clone();
        let sink: Sink = Arc::new(move |e: &Event| s2.lock().unwrap().push(e.clone()));
        with_sink(sink, || {
            let b = bar(10, "cells", true);
            b.set_position(3);
            b.inc(2);
            b.println("resuming");
            b.finish_and_clear();
        });
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                Event::Start {
                    total: 10,
                    unit: "cells".into()
                },
                Event::Advance(3),
                Event::Advance(2),
                Event::Message("resuming".into()),
                Event::Finish,
            ]
        );
        let after = bar(1, "x", true);
        assert!(after.sink.is_none());
    }
}
