//! A fixed, deterministic DSCSA-shaped workload for the `pharmalink epcis bench` figure:
//! commissioning (with ILMD lot/expiry), packing, and shipping events in JSON-LD.

use crate::gs1::check::gs1_check_digit;

fn sgtin(serial: usize) -> String {
    format!("urn:epc:id:sgtin:030001.0012345.{serial}")
}

fn sscc(index: usize) -> String {
    let payload = format!("0030001{:010}", index);
    format!(
        "https://id.gs1.org/00/{payload}{}",
        gs1_check_digit(&payload).unwrap_or(0)
    )
}

/// `events` events split into capture documents of `per_document` events (a capture request
/// carries a bounded batch; 100 is typical). Event contents are as in [`json_document`].
pub fn json_documents(events: usize, per_document: usize) -> Vec<String> {
    let per_document = per_document.max(1);
    let mut out = Vec::with_capacity(events.div_ceil(per_document));
    let mut start = 0;
    while start < events {
        let count = per_document.min(events - start);
        out.push(json_document_from(start, count));
        start += count;
    }
    out
}

/// A JSON-LD EPCIS document with `events` events (each with 4 EPCs).
pub fn json_document(events: usize) -> String {
    json_document_from(0, events)
}

fn json_document_from(first: usize, events: usize) -> String {
    let mut list = Vec::with_capacity(events);
    for index in first..first + events {
        let epcs: Vec<String> = (0..4)
            .map(|k| format!("\"{}\"", sgtin(index * 4 + k)))
            .collect();
        let time = format!(
            "2026-03-{:02}T{:02}:{:02}:{:02}.{:03}-05:00",
            1 + index % 28,
            index % 24,
            index % 60,
            (index / 60) % 60,
            index % 1000
        );
        let event = match index % 3 {
            0 => format!(
                r#"{{"type":"ObjectEvent","eventTime":"{time}","eventTimeZoneOffset":"-05:00","epcList":[{}],"action":"ADD","bizStep":"commissioning","disposition":"active","readPoint":{{"id":"urn:epc:id:sgln:030001.111111.0"}},"bizLocation":{{"id":"urn:epc:id:sgln:030001.111111.0"}},"ilmd":{{"cbvmda:lotNumber":"A{}","cbvmda:itemExpirationDate":"2028-03-27"}}}}"#,
                epcs.join(","),
                index % 997
            ),
            1 => format!(
                r#"{{"type":"AggregationEvent","eventTime":"{time}","eventTimeZoneOffset":"-05:00","parentID":"{}","childEPCs":[{}],"action":"ADD","bizStep":"packing","disposition":"in_progress","readPoint":{{"id":"urn:epc:id:sgln:030001.111111.0"}}}}"#,
                sscc(index),
                epcs.join(",")
            ),
            _ => format!(
                r#"{{"type":"ObjectEvent","eventTime":"{time}","eventTimeZoneOffset":"-05:00","epcList":[{}],"action":"OBSERVE","bizStep":"shipping","disposition":"in_transit","readPoint":{{"id":"urn:epc:id:sgln:030001.111121.0"}},"bizTransactionList":[{{"type":"po","bizTransaction":"urn:epcglobal:cbv:bt:0399999999991:PO{index}"}}],"sourceList":[{{"type":"owning_party","source":"urn:epc:id:pgln:030001.111111"}}],"destinationList":[{{"type":"owning_party","destination":"urn:epc:id:pgln:039999.999999"}}]}}"#,
                epcs.join(",")
            ),
        };
        list.push(event);
    }
    format!(
        r#"{{"@context":["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",{{"cbvmda":"urn:epcglobal:cbv:mda:"}}],"type":"EPCISDocument","schemaVersion":"2.0","creationDate":"2026-03-01T00:00:00Z","epcisBody":{{"eventList":[{}]}}}}"#,
        list.join(",")
    )
}

/// Parses, validates and hashes the document; returns the number of events identified.
pub fn process(text: &str) -> usize {
    super::capture(text)
        .map(|capture| capture.event_ids.len())
        .unwrap_or(0)
}

/// [`process`] over every document.
pub fn process_all(documents: &[String]) -> usize {
    documents.iter().map(|document| process(document)).sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn workload_is_valid() {
        let text = super::json_document(9);
        if let Err(errors) = super::super::capture(&text) {
            panic!("{errors:?}");
        }
        assert_eq!(super::process(&text), 9);
        let documents = super::json_documents(250, 100);
        assert_eq!(documents.len(), 3);
        assert_eq!(super::process_all(&documents), 250);
    }
}
