//! The subject lookup on the hot path: a pre-built subject for a known symbol, against
//! building one per message.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sequex_subjects::{Channel, Stream, Subject, Symbol, SymbolSubjects};

fn subjects(c: &mut Criterion) {
    let symbols: Vec<Symbol> = ["BTCUSDT", "ETHUSDT", "1000SHIBUSDT", "BTCUSD_PERP"]
        .into_iter()
        .map(Symbol::from_static)
        .collect();
    let table: Vec<SymbolSubjects> = symbols.iter().map(SymbolSubjects::new).collect();

    let mut group = c.benchmark_group("subject");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function("prebuilt_clone", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let s = &table[i % table.len()];
            black_box(s.live(Channel::ALL[i & 1]).clone())
        })
    });
    group.bench_function("build_per_message", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            black_box(Subject::new(
                Stream::Trade,
                Channel::ALL[i & 1],
                &symbols[i % symbols.len()],
            ))
        })
    });
    group.bench_function("format_per_message", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            black_box(format!(
                "TRADE.{}.{}",
                Channel::ALL[i & 1],
                symbols[i % symbols.len()]
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, subjects);
criterion_main!(benches);
