//! The bridge from async code to the CPU pool: hashing, compression, encryption and
//! key derivation run on rayon, never on a tokio worker. This is the one module that
//! spawns onto rayon.

/// Runs `f` on the rayon pool and awaits its result.
pub async fn spawn<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    // A panic in `f` (a bug, never bad input) resumes in the awaiting task with its
    // own message, where tokio reports it, instead of a generic one from here.
    match rx.await {
        Ok(Ok(v)) => v,
        Ok(Err(payload)) => std::panic::resume_unwind(payload),
        Err(_) => unreachable!("the sender is dropped only after sending"),
    }
}
