//! Decoding untrusted ledger bytes (transactions, blocks, certificates, proof files, consensus
//! messages come this way) must never panic, and what decodes must re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pharmalink_ledger::{Block, BlockHeader, Canonical, CommitCertificate, Genesis, Transaction, TxInclusionBundle, ValidatorSet};

fn round_trip<T: Canonical>(data: &[u8]) {
    if let Ok(value) = T::from_canonical_bytes(data) {
        assert_eq!(value.to_canonical_bytes().expect("a decoded value encodes"), data);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<Transaction>(data);
    round_trip::<BlockHeader>(data);
    round_trip::<Block>(data);
    round_trip::<CommitCertificate>(data);
    round_trip::<ValidatorSet>(data);
    round_trip::<Genesis>(data);
    if let Ok(bundle) = TxInclusionBundle::from_file_bytes(data) {
        let _ = bundle.verify();
    }
});
