//! Prints a learning-rate schedule as JSON (`[lr at count 0, 1, …, total]`), for
//! `tools/peers/optax_schedules.py` to compare with optax.
//!
//!     cargo run --release --example schedule -- KIND LR TOTAL [WARMUP] [END_LR] [BOUNDARIES SCALES]
use wgpu_cnn::schedule::Schedule;

fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let get = |i: usize| a.get(i).filter(|s| *s != "-").map(String::as_str);
    let kind = get(0).unwrap_or("constant");
    let lr: f64 = get(1).unwrap_or("0.1").parse()?;
    let total: u64 = get(2).unwrap_or("100").parse()?;
    let warmup = get(3).map(str::parse).transpose()?;
    let end = get(4).map(str::parse).transpose()?;
    let s = Schedule::from_flags(kind, warmup, None, None, end, get(5), get(6))?;
    let v: Vec<f64> = (0..=total).map(|c| s.lr(lr, c, total)).collect();
    println!("{}", serde_json::to_string(&v)?);
    Ok(())
}
