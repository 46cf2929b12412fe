//! EPCIS 2.0: the event model, the JSON-LD and XML bindings (XML: EPCIS 2.0, and EPCIS 1.2 as
//! the GS1 US DSCSA guideline uses it, with master data and the transaction statement),
//! validation beyond the JSON schema, and the CBV 2.0 event hash ID. Pure: no IO.

pub mod cbv;
mod cbv_lists;
pub mod hash;
pub mod json;
pub mod model;
pub mod time;

pub use cbv_lists::{
    BIZ_STEPS, BIZ_TRANSACTION_TYPES, DISPOSITIONS, ERROR_REASONS, SOURCE_DESTINATION_TYPES,
};
pub use hash::{document_hash_ids, event_hash_id, pre_hash_string};
pub use json::{read_json_ld, write_json_ld};
pub use model::{EpcisDocument, EpcisError, Event};
