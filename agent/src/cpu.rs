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
        let _ = tx.send(f());
    });
    match rx.await {
        Ok(v) => v,
        // The closure panicked; surface it rather than hang.
        Err(_) => panic!("CPU task panicked"),
    }
}
