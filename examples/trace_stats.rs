//! Read a trace and print counts and timings (a development aid for the engine).
//! Usage: cargo run --release --example trace_stats FILE

use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).expect("usage: trace_stats FILE");
    let t = Instant::now();
    let f = std::fs::File::open(&path).expect("open");
    let mut r = gopark_core::TraceReader::new(f).expect("header");
    let n = r.drain();
    let dt = t.elapsed().as_secs_f64();
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "{n} events, {} goroutines, {} generations, {:.3}s, {:.1} MB/s, {:.1} M events/s, error: {:?}",
        r.summary.goroutines.len(),
        r.generations.len(),
        dt,
        size as f64 / dt / 1e6,
        n as f64 / dt / 1e6,
        r.error
    );
}
