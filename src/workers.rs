//! Session workers: `--workers` threads, each running its own single-threaded tokio runtime,
//! serving the connections the listener hands them.
//!
//! **Why not one multi-threaded runtime.** A session is two sockets (client and upstream)
//! and little CPU per message. On tokio's work-stealing runtime, the thread that finds a
//! socket ready is not always the one that runs the session: a parked worker may be woken
//! (a futex call and a context switch) to run or steal it, and a query's request and its
//! reply may be handled on different threads and caches. Here a session lives its whole life
//! on one thread: both its sockets are registered with that thread's epoll instance, the
//! thread sleeps in `epoll_wait` and runs the session as soon as either socket is ready, and
//! no other thread is ever woken for it. It is the shape of nginx (one event loop per
//! worker) and of PgBouncer (one loop).
//!
//! **What it buys, measured** (`pgbench -S -M prepared -c 16` on 2 CPUs shared with
//! PostgreSQL and pgbench, perf stat on pgveil, 3 runs each): most system calls per
//! transaction are the four reads and writes of the two hops; the rest is `epoll_wait`, one
//! per wake-up, so the fewer event loops share the sessions, the more ready sockets each
//! wake-up finds. One worker: 4.2 system calls and 0.55 context switches per transaction,
//! as PgBouncer (4.2 and 0.4); two workers: 4.4 to 4.9 and 0.6 to 1.1; tokio's
//! multi-threaded runtime with two threads: 4.3 to 4.5 and 0.55 to 0.6. But one worker gets
//! one CPU's share at most: on that busy machine it served about 0.55 of direct TPS, as
//! PgBouncer, against 0.75 to 0.9 for two workers. Hence the default, one worker per CPU.
//!
//! **The price.** There is no stealing: a session that holds the CPU for long (analysing a
//! huge statement) delays the other sessions of its worker, not those of other workers.
//!
//! **Hand-off.** One listener accepts (on the caller's runtime, with the connection limit and
//! the accept backoff of [`crate::server`]) and gives each connection to the worker with the
//! fewest open sessions, round-robin among equals, over a channel. Considered and not chosen:
//! one `SO_REUSEPORT` listener per worker. The kernel spreads those connections by a hash of
//! the address pair, blind to load, so 16 clients on 2 workers can end 11 and 5; counting
//! open sessions keeps workers even and sends new clients where old ones left. A port bound
//! with `SO_REUSEPORT` also lets any other process of the same user bind it and take a share
//! of the clients. The hand-off costs one channel send and one wake of the worker per
//! connection (not per message), and two `epoll_ctl` calls to move the socket from the
//! listener's epoll instance to the worker's.
//!
//! **Shared state.** Everything sessions share ([`Shared`]: policy, cancel keys, counters,
//! the audit writer) is thread-safe already, so a CancelRequest accepted by one worker finds
//! the key of a session running on another and cancels its upstream backend over a new
//! connection. `tokio::spawn` inside a session spawns onto its own worker's runtime; nothing
//! in a session blocks its thread (the audit writer acknowledges through a tokio channel).
//!
//! **Stopping.** When the [`Workers`] value is dropped or [`Workers::stop`] is called, the
//! channels close; each worker then drops its runtime, which closes the sessions still open
//! (the client sees its connection end), and its thread ends.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

use crate::session::{self, Shared};

/// Stack of each worker thread: libpg_query's parse tree of a deeply nested statement is
/// decoded recursively; with room on the stack the analyser need not switch stacks
/// (`stacker`).
const WORKER_STACK: usize = 8 << 20;

/// The default for `--workers`: one per CPU the process may use (cgroup quotas and CPU
/// affinity included), 1 when that cannot be known.
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// An accepted connection on its way to a worker.
struct Conn {
    /// Detached from the listener's runtime: a socket is registered with one epoll instance,
    /// and it must be the one of the worker that serves it.
    tcp: std::net::TcpStream,
    peer: SocketAddr,
    /// The connection's slot under the server's limit, released when the session ends.
    permit: OwnedSemaphorePermit,
}

/// One worker as the listener sees it.
struct Worker {
    tx: mpsc::UnboundedSender<Conn>,
    /// Sessions handed to this worker and not yet ended: where the next one goes.
    open: Arc<AtomicUsize>,
}

/// The running workers.
pub struct Workers {
    workers: Vec<Worker>,
    /// Sessions ended on any worker since start: tells [`trim_memory`] when to run.
    ended_sessions: Arc<AtomicU64>,
    /// Where the search for the least loaded worker starts: round-robin among equals.
    next: usize,
    /// One per worker thread, completed when the thread has dropped its runtime.
    ended: Vec<oneshot::Receiver<()>>,
}

impl Workers {
    /// Starts `count` (at least 1) worker threads serving sessions with `shared`.
    pub fn start(count: usize, shared: &Arc<Shared>) -> std::io::Result<Workers> {
        let count = count.max(1);
        let mut workers = Vec::with_capacity(count);
        let mut ended = Vec::with_capacity(count);
        let ended_sessions = Arc::new(AtomicU64::new(0));
        for i in 0..count {
            // Built here so that a failure is reported at start-up, not lost in a thread.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (tx, rx) = mpsc::unbounded_channel();
            let (done, ended_rx) = oneshot::channel();
            let open = Arc::new(AtomicUsize::new(0));
            let (shared, open_in, ended_in) = (shared.clone(), open.clone(), ended_sessions.clone());
            std::thread::Builder::new()
                .name(format!("pgveil-worker-{i}"))
                .stack_size(WORKER_STACK)
                .spawn(move || {
                    runtime.block_on(serve(rx, shared, open_in, ended_in));
                    // Closes the sessions still open on this worker.
                    drop(runtime);
                    let _ = done.send(());
                })?;
            workers.push(Worker { tx, open });
            ended.push(ended_rx);
        }
        Ok(Workers {
            workers,
            ended_sessions,
            next: 0,
            ended,
        })
    }

    /// The count of ended sessions, for [`trim_memory`].
    pub fn ended_sessions(&self) -> Arc<AtomicU64> {
        self.ended_sessions.clone()
    }

    /// How many workers serve sessions.
    pub fn count(&self) -> usize {
        self.workers.len()
    }

    /// Gives an accepted connection to the worker with the fewest open sessions.
    pub fn hand(&mut self, tcp: TcpStream, peer: SocketAddr, permit: OwnedSemaphorePermit) {
        let tcp = match tcp.into_std() {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "cannot hand a connection to a worker");
                return;
            }
        };
        let mut conn = Conn { tcp, peer, permit };
        // A worker whose thread is gone (it cannot panic in practice: tokio catches a
        // session's panic) is skipped; with none left the connection is dropped.
        for _ in 0..self.workers.len() {
            let i = self.least_loaded();
            let w = &self.workers[i];
            w.open.fetch_add(1, Relaxed);
            match w.tx.send(conn) {
                Ok(()) => return,
                Err(mpsc::error::SendError(back)) => {
                    // Never picked again: its count stays above every live worker's.
                    w.open.store(usize::MAX / 2, Relaxed);
                    conn = back;
                }
            }
        }
        tracing::error!(peer = %conn.peer, "no session worker is running; connection dropped");
    }

    /// The worker with the fewest open sessions, the first from `next` among equals.
    fn least_loaded(&mut self) -> usize {
        let n = self.workers.len();
        let mut best = self.next % n;
        let mut best_open = usize::MAX;
        for k in 0..n {
            let i = (self.next + k) % n;
            let open = self.workers[i].open.load(Relaxed);
            if open < best_open {
                best = i;
                best_open = open;
            }
        }
        self.next = best + 1;
        best
    }

    /// Stops the workers: closes their channels, then waits until each has closed the
    /// sessions it still had.
    pub async fn stop(self) {
        let Workers { workers, ended, .. } = self;
        drop(workers);
        for e in ended {
            let _ = e.await;
        }
    }
}

/// A worker's loop: runs each connection it receives as a task of this thread's runtime,
/// until the listener closes the channel.
async fn serve(
    mut rx: mpsc::UnboundedReceiver<Conn>,
    shared: Arc<Shared>,
    open: Arc<AtomicUsize>,
    ended: Arc<AtomicU64>,
) {
    while let Some(Conn { tcp, peer, permit }) = rx.recv().await {
        let shared = shared.clone();
        let left = Left(open.clone(), ended.clone());
        tokio::spawn(async move {
            // Registers the socket with this thread's epoll instance.
            match TcpStream::from_std(tcp) {
                Ok(tcp) => session::run(tcp, peer, shared).await,
                Err(e) => tracing::warn!(%peer, error = %e, "a worker cannot take a connection"),
            }
            drop(permit);
            drop(left);
        });
    }
}

/// Counts a session out of its worker when it ends, however it ends (the task may also be
/// dropped with the runtime at shutdown), and into the ended sessions.
struct Left(Arc<AtomicUsize>, Arc<AtomicU64>);

impl Drop for Left {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
        self.1.fetch_add(1, Relaxed);
    }
}

/// How often [`trim_memory`] looks for ended sessions.
const TRIM_EVERY: Duration = Duration::from_secs(2);

/// Gives the memory of ended sessions back to the operating system; runs until dropped.
///
/// glibc's malloc keeps what a thread frees in that thread's arena for reuse and returns
/// only the free top of a heap: the buffers of many sessions, freed in no particular order,
/// stay mapped. Measured (bench/run.sh, `idle`): with 1,000 idle sessions opened and closed
/// five times, RSS between rounds grew 18, 40, 59, 76, 90 MiB; with this trim it stays at
/// 18 to 20 MiB (44 MiB while the 1,000 sessions are open). So every
/// [`TRIM_EVERY`], if sessions ended since the last look, `malloc_trim(0)` releases the free
/// pages of every arena. It walks the free lists under each arena's lock (about a
/// millisecond for tens of MiB), so it runs on a blocking thread, never on a worker.
///
/// Replacing the allocator was measured too: mimalloc held 240 to 256 MiB with 1,000 idle
/// sessions (glibc: 44 to 47 MiB), still 237 MiB between rounds, and gave it back only
/// minutes later.
pub async fn trim_memory(ended_sessions: Arc<AtomicU64>) {
    let mut seen = ended_sessions.load(Relaxed);
    let mut tick = tokio::time::interval(TRIM_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = ended_sessions.load(Relaxed);
        if now != seen {
            seen = now;
            let _ = tokio::task::spawn_blocking(release_free_memory).await;
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    // SAFETY: malloc_trim has no preconditions; it takes glibc's own arena locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators (musl, macOS) return memory by themselves or offer no such call.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

#[cfg(test)]
mod tests {
    use super::*;

    /// `least_loaded` without threads: workers whose channels nobody reads.
    fn idle_workers(n: usize) -> (Workers, Vec<mpsc::UnboundedReceiver<Conn>>) {
        let mut workers = Vec::new();
        let mut rxs = Vec::new();
        for _ in 0..n {
            let (tx, rx) = mpsc::unbounded_channel();
            workers.push(Worker {
                tx,
                open: Arc::new(AtomicUsize::new(0)),
            });
            rxs.push(rx);
        }
        (
            Workers {
                workers,
                ended_sessions: Arc::new(AtomicU64::new(0)),
                next: 0,
                ended: Vec::new(),
            },
            rxs,
        )
    }

    #[test]
    fn new_sessions_go_to_the_least_loaded_worker_round_robin_among_equals() {
        let (mut w, _rx) = idle_workers(3);
        let mut picks = Vec::new();
        for _ in 0..6 {
            let i = w.least_loaded();
            w.workers[i].open.fetch_add(1, Relaxed);
            picks.push(i);
        }
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        // Two sessions of worker 1 end: the next two go there.
        w.workers[1].open.fetch_sub(2, Relaxed);
        let a = w.least_loaded();
        w.workers[a].open.fetch_add(1, Relaxed);
        let b = w.least_loaded();
        assert_eq!((a, b), (1, 1));
    }
}
