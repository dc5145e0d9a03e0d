//! A progress bar on stderr while long work runs, only when stderr is a terminal
//! and neither `--json` nor `--quiet` was given.

use std::{
    io::IsTerminal,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use indicatif::{ProgressBar, ProgressStyle};

/// A running progress display; stops when dropped.
pub struct Display {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts a bar that calls `read` for (done, total, message) every 200 ms.
pub fn start(g: &super::Global, read: impl Fn() -> (u64, u64, String) + Send + 'static) -> Display {
    let stop = Arc::new(AtomicBool::new(false));
    if g.json || g.quiet || !std::io::stderr().is_terminal() {
        return Display { stop, thread: None };
    }
    let s = stop.clone();
    let thread = std::thread::spawn(move || {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        while !s.load(Ordering::Relaxed) {
            let (done, total, msg) = read();
            bar.set_length(total.max(done));
            bar.set_position(done);
            bar.set_message(msg);
            std::thread::sleep(Duration::from_millis(200));
        }
        bar.finish_and_clear();
    });
    Display {
        stop,
        thread: Some(thread),
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
