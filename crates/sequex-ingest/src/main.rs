//! `sequex-ingest`: exchange market data into the Sequex bus.

fn main() {}
