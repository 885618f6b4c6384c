//! N workers in a closed loop (each sends its next call when the previous one is
//! answered), a warm-up, then a measured window: a fixed duration, or a fixed number
//! of calls. Calls, latencies and CPU time count only inside the window.

use crate::cpu::{self, Watched};
use crate::mcp::{HttpClient, Worker, Workload};
use anyhow::Context as _;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When the measured window ends.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// After this long.
    After(Duration),
    /// After this many calls (all workers added up).
    Calls(u64),
}

/// How a run is driven.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Workers, each with its own connection (and session).
    pub concurrency: usize,
    /// Calls before the window opens: connections, sessions and caches warm up.
    pub warmup: Duration,
    /// The end of the window.
    pub stop: Stop,
}

/// What the window saw.
#[derive(Debug)]
pub struct Measured {
    /// Successful calls completed in the window.
    pub calls: u64,
    /// Failed calls (anywhere in the run, warm-up included).
    pub errors: u64,
    /// The first few distinct failures.
    pub error_samples: Vec<String>,
    /// Length of the window.
    pub elapsed: Duration,
    /// Latency of each call of the window, nanoseconds, sorted.
    pub latencies_ns: Vec<u64>,
    /// CPU seconds each watched group spent in the window, in the order given.
    pub cpu_seconds: Vec<f64>,
}

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const DONE: u8 = 2;
const ERROR_SAMPLES: usize = 5;

/// What the workers share.
struct Shared {
    phase: AtomicU8,
    /// Calls left to start in the window (`Stop::Calls`); unused otherwise.
    tickets: AtomicU64,
    fixed_calls: bool,
    errors: AtomicU64,
    error_samples: Mutex<Vec<String>>,
}

impl Shared {
    fn new(stop: Stop) -> Shared {
        Shared {
            phase: AtomicU8::new(WARMUP),
            tickets: AtomicU64::new(match stop {
                Stop::Calls(n) => n,
                Stop::After(_) => 0,
            }),
            fixed_calls: matches!(stop, Stop::Calls(_)),
            errors: AtomicU64::new(0),
            error_samples: Mutex::new(Vec::new()),
        }
    }

    fn error_samples(&self) -> Vec<String> {
        match self.error_samples.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn phase(&self) -> u8 {
        self.phase.load(Ordering::Acquire)
    }

    fn take_ticket(&self) -> bool {
        self.tickets
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    fn failed(&self, error: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut samples = match self.error_samples.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if samples.len() < ERROR_SAMPLES && !samples.contains(&error) {
            samples.push(error);
        }
    }
}

/// Opens the workers, warms up, measures, then closes the sessions.
pub async fn drive(
    http: HttpClient,
    workload: Arc<Workload>,
    plan: &Plan,
    watched: &[Watched],
) -> anyhow::Result<Measured> {
    let workers = open_workers(&http, &workload, plan.concurrency).await?;
    let shared = Arc::new(Shared::new(plan.stop));
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|worker| tokio::spawn(work(worker, Arc::clone(&shared))))
        .collect();

    tokio::time::sleep(plan.warmup).await;
    let cpu_before = cpu::sample(watched)?;
    let started = Instant::now();
    shared.phase.store(MEASURE, Ordering::Release);
    let window = match plan.stop {
        Stop::After(duration) => {
            tokio::time::sleep(duration).await;
            shared.phase.store(DONE, Ordering::Release);
            Some((started.elapsed(), cpu::sample(watched)?))
        }
        Stop::Calls(_) => None,
    };
    let mut latencies_ns = Vec::new();
    let mut finished = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (worker, latencies) = task.await.context("a worker task panicked")?;
        latencies_ns.extend(latencies);
        finished.push(worker);
    }
    let (elapsed, cpu_after) = match window {
        Some(window) => window,
        None => (started.elapsed(), cpu::sample(watched)?),
    };
    for worker in finished {
        worker.close().await;
    }
    latencies_ns.sort_unstable();
    let ticks = cpu::ticks_per_second() as f64;
    Ok(Measured {
        calls: latencies_ns.len() as u64,
        errors: shared.errors.load(Ordering::Relaxed),
        error_samples: shared.error_samples(),
        elapsed,
        latencies_ns,
        cpu_seconds: cpu_before
            .iter()
            .zip(&cpu_after)
            .map(|(before, after)| after.saturating_sub(*before) as f64 / ticks)
            .collect(),
    })
}

/// Every worker ready to call (sessions opened one after the other, before any load).
async fn open_workers(
    http: &HttpClient,
    workload: &Arc<Workload>,
    concurrency: usize,
) -> anyhow::Result<Vec<Worker>> {
    let mut workers = Vec::with_capacity(concurrency);
    for n in 0..concurrency {
        let worker = Worker::open(http.clone(), Arc::clone(workload))
            .await
            .with_context(|| format!("opening worker {n} (initialize)"))?;
        workers.push(worker);
    }
    Ok(workers)
}

/// One worker's loop; returns the latencies of its calls that count.
async fn work(mut worker: Worker, shared: Arc<Shared>) -> (Worker, Vec<u64>) {
    let mut latencies = Vec::with_capacity(4096);
    loop {
        let counted = match shared.phase() {
            DONE => break,
            MEASURE if shared.fixed_calls => {
                if !shared.take_ticket() {
                    break;
                }
                true
            }
            _ => false,
        };
        let started = Instant::now();
        let outcome = worker.call().await;
        let latency = started.elapsed();
        match outcome {
            Err(error) => shared.failed(error.0),
            // With a duration, a call counts when it completes inside the window.
            Ok(()) if counted || (!shared.fixed_calls && shared.phase() == MEASURE) => {
                latencies.push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
            }
            Ok(()) => {}
        }
    }
    (worker, latencies)
}
