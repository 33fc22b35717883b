//! The floor under `kubecert renew`: generating N keys of one algorithm with nothing else,
//! serially or with renew's parallelism (one std::thread::scope thread per key, all at once).
//! `bench/run.sh` times this binary against `renew all` on a PKI with the same N and key type.
//!
//! Usage: `keygen_floor [--count N] [--alg rsa-2048|ecdsa-p256|...] [--parallel]`
//! Prints the in-process wall time, in milliseconds, on stdout.

use std::time::Instant;

use kubecert::pki::issue::{generate_key, KeyAlgorithm};

fn main() {
    let mut count = 11usize;
    let mut alg = KeyAlgorithm::Rsa2048;
    let mut parallel = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--count" => {
                count = args.next().and_then(|v| v.parse().ok()).expect("--count N");
            }
            "--alg" => {
                alg = args
                    .next()
                    .expect("--alg NAME")
                    .parse()
                    .expect("a key algorithm");
            }
            "--parallel" => parallel = true,
            "--serial" => parallel = false,
            other => {
                eprintln!("usage: keygen_floor [--count N] [--alg ALG] [--parallel|--serial] (got {other:?})");
                std::process::exit(2);
            }
        }
    }
    let alg = alg.resolve(&kubecert::pki::cert::PublicKeyAlgorithm::Rsa(2048));
    let start = Instant::now();
    if parallel {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..count)
                .map(|_| s.spawn(move || generate_key(alg).expect("key generation")))
                .collect();
            for h in handles {
                std::hint::black_box(h.join().expect("keygen thread"));
            }
        });
    } else {
        for _ in 0..count {
            std::hint::black_box(generate_key(alg).expect("key generation"));
        }
    }
    println!("{:.3}", start.elapsed().as_secs_f64() * 1000.0);
}
