//! The CBV 2.0 event hash ID (`ni:///sha-256;…?ver=CBV2.0`): a canonical pre-hash string per
//! event (fixed field order, lists sorted, identifiers as canonical GS1 Digital Link URIs, CBV
//! values as web URIs, times in UTC with milliseconds, extensions as `{namespace}name=value`
//! sorted), then SHA-256. It matches the reference implementation's published vectors.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::cbv::{canonical_sensor_type, canonical_vocab, VocabKind};
use super::model::*;
use super::time::normalize_date_time;
use crate::gs1::epc::canonical_digital_link;

const SENSOR_METADATA_ORDER: &[&str] = &[
    "time",
    "startTime",
    "endTime",
    "deviceID",
    "deviceMetadata",
    "rawData",
    "dataProcessingMethod",
    "bizRules",
];
const SENSOR_REPORT_ORDER: &[&str] = &[
    "type",
    "exception",
    "deviceID",
    "deviceMetadata",
    "rawData",
    "dataProcessingMethod",
    "time",
    "microorganism",
    "chemicalSubstance",
    "value",
    "component",
    "stringValue",
    "booleanValue",
    "hexBinaryValue",
    "uriValue",
    "minValue",
    "maxValue",
    "meanValue",
    "sDev",
    "percRank",
    "percValue",
    "uom",
    "coordinateReferenceSystem",
];

fn identifier(value: &str) -> String {
    canonical_digital_link(value).unwrap_or_else(|| value.to_string())
}

fn is_time_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.contains("time") && !lower.contains("offset")
}

fn time(value: &str) -> String {
    normalize_date_time(value).unwrap_or_else(|_| value.to_string())
}

/// Expands `prefix:local` with the document's namespaces to `{iri}local`.
fn expand_name(document: &EpcisDocument, key: &str) -> String {
    if let Some((prefix, local)) = key.split_once(':') {
        if let Some(iri) = document.namespace(prefix) {
            return format!("{{{iri}}}{local}");
        }
    }
    key.to_string()
}

fn leaf_text(name: &str, ext: &Ext) -> Option<String> {
    match ext {
        Ext::Null => None,
        Ext::Bool(b) => Some(b.to_string()),
        Ext::Number(d) => Some(d.to_string()),
        Ext::Text(text) => {
            let text = text.trim();
            if text.is_empty() {
                None
            } else if is_time_name(name) {
                Some(time(text))
            } else {
                Some(identifier(text))
            }
        }
        Ext::List(_) | Ext::Object(_) => None,
    }
}

/// Renders one extension field; lists become repeated fields; children are sorted.
fn render_ext(document: &EpcisDocument, key: &str, ext: &Ext, out: &mut Vec<String>) {
    let name = expand_name(document, key);
    match ext {
        Ext::List(items) => {
            for item in items {
                render_ext(document, key, item, out);
            }
        }
        Ext::Object(fields) => {
            let mut children = Vec::new();
            for (child_key, child) in fields {
                render_ext(document, child_key, child, &mut children);
            }
            children.sort();
            out.push(format!("{name}{}", children.concat()));
        }
        leaf => {
            if let Some(text) = leaf_text(key, leaf) {
                out.push(format!("{name}={text}"));
            }
        }
    }
}

fn sorted_section(out: &mut String, name: &str, mut items: Vec<String>) {
    if items.iter().all(String::is_empty) {
        return;
    }
    items.sort();
    out.push_str(name);
    for item in items {
        out.push_str(&item);
    }
}

fn epc_section(out: &mut String, name: &str, epcs: &[String]) {
    if epcs.is_empty() {
        return;
    }
    // Sorting the identifiers sorts the "epc=…" items: they share the prefix.
    let mut identifiers: Vec<String> = epcs.iter().map(|epc| identifier(epc)).collect();
    identifiers.sort_unstable();
    out.push_str(name);
    for id in identifiers {
        out.push_str("epc=");
        out.push_str(&id);
    }
}

fn quantity_section(out: &mut String, name: &str, list: &[QuantityElement]) {
    let items = list
        .iter()
        .map(|q| {
            let mut item = format!("quantityElementepcClass={}", identifier(&q.epc_class));
            if let Some(quantity) = &q.quantity {
                item.push_str(&format!("quantity={quantity}"));
            }
            if let Some(uom) = &q.uom {
                item.push_str(&format!("uom={uom}"));
            }
            item
        })
        .collect();
    sorted_section(out, name, items);
}

fn typed_section(out: &mut String, name: &str, id_name: &str, list: &[TypedId], kind: VocabKind) {
    let items = list
        .iter()
        .map(|t| {
            let kind_part = t
                .kind
                .as_ref()
                .map(|k| format!("type={}", canonical_vocab(kind, k)))
                .unwrap_or_default();
            let id = if id_name == "bizTransaction" {
                t.id.trim().to_string()
            } else {
                identifier(&t.id)
            };
            format!("{kind_part}{id_name}={id}")
        })
        .collect();
    sorted_section(out, name, items);
}

fn sensor_fields(
    document: &EpcisDocument,
    name: &str,
    fields: &SensorFields,
    order: &[&str],
) -> String {
    let mut out = String::new();
    for field in order {
        if let Some(value) = fields.get(field) {
            let text = match (*field, value) {
                ("type", Ext::Text(t)) => Some(canonical_sensor_type(t)),
                (_, other) => leaf_text(field, other),
            };
            if let Some(text) = text {
                write_into(&mut out, format_args!("{field}={text}"));
            }
        }
    }
    let mut extra = Vec::new();
    for (key, value) in fields
        .fields
        .iter()
        .filter(|(k, _)| !order.contains(&k.as_str()))
    {
        render_ext(document, key, value, &mut extra);
    }
    extra.sort();
    out.push_str(&extra.concat());
    if out.is_empty() {
        out
    } else {
        format!("{name}{out}")
    }
}

/// The canonical pre-hash string of an event.
pub fn pre_hash_string(document: &EpcisDocument, event: &Event) -> String {
    let mut out = format!("eventType={}", event.event_type.name());
    write_into(
        &mut out,
        format_args!("eventTime={}", time(&event.event_time)),
    );
    write_into(
        &mut out,
        format_args!("eventTimeZoneOffset={}", event.event_time_zone_offset),
    );
    epc_section(&mut out, "epcList", &event.epc_list);
    if let Some(parent) = &event.parent_id {
        write_into(&mut out, format_args!("parentID={}", identifier(parent)));
    }
    epc_section(&mut out, "inputEPCList", &event.input_epc_list);
    epc_section(&mut out, "childEPCs", &event.child_epcs);
    quantity_section(&mut out, "quantityList", &event.quantity_list);
    quantity_section(&mut out, "childQuantityList", &event.child_quantity_list);
    quantity_section(&mut out, "inputQuantityList", &event.input_quantity_list);
    epc_section(&mut out, "outputEPCList", &event.output_epc_list);
    quantity_section(&mut out, "outputQuantityList", &event.output_quantity_list);
    if let Some(action) = event.action {
        write_into(&mut out, format_args!("action={}", action.name()));
    }
    if let Some(id) = &event.transformation_id {
        write_into(
            &mut out,
            format_args!("transformationID={}", identifier(id)),
        );
    }
    if let Some(step) = &event.biz_step {
        write_into(
            &mut out,
            format_args!("bizStep={}", canonical_vocab(VocabKind::BizStep, step)),
        );
    }
    if let Some(disposition) = &event.disposition {
        write_into(
            &mut out,
            format_args!(
                "disposition={}",
                canonical_vocab(VocabKind::Disposition, disposition)
            ),
        );
    }
    if let Some(pd) = &event.persistent_disposition {
        let mut set: Vec<String> = pd
            .set
            .iter()
            .map(|d| format!("set={}", canonical_vocab(VocabKind::Disposition, d)))
            .collect();
        let mut unset: Vec<String> = pd
            .unset
            .iter()
            .map(|d| format!("unset={}", canonical_vocab(VocabKind::Disposition, d)))
            .collect();
        set.sort();
        unset.sort();
        if !set.is_empty() || !unset.is_empty() {
            out.push_str("persistentDisposition");
            out.push_str(&set.concat());
            out.push_str(&unset.concat());
        }
    }
    if let Some(place) = &event.read_point {
        write_into(
            &mut out,
            format_args!("readPointid={}", identifier(&place.id)),
        );
    }
    if let Some(place) = &event.biz_location {
        write_into(
            &mut out,
            format_args!("bizLocationid={}", identifier(&place.id)),
        );
    }
    typed_section(
        &mut out,
        "bizTransactionList",
        "bizTransaction",
        &event.biz_transaction_list,
        VocabKind::BizTransactionType,
    );
    // destinationList precedes sourceList, as in the reference implementation's vectors.
    typed_section(
        &mut out,
        "destinationList",
        "destination",
        &event.destination_list,
        VocabKind::SourceDestinationType,
    );
    typed_section(
        &mut out,
        "sourceList",
        "source",
        &event.source_list,
        VocabKind::SourceDestinationType,
    );
    let sensor_elements: Vec<String> = event
        .sensor_element_list
        .iter()
        .map(|element| {
            let metadata = element
                .metadata
                .as_ref()
                .map(|m| sensor_fields(document, "sensorMetadata", m, SENSOR_METADATA_ORDER))
                .unwrap_or_default();
            let mut reports: Vec<String> = element
                .reports
                .iter()
                .map(|r| sensor_fields(document, "sensorReport", r, SENSOR_REPORT_ORDER))
                .collect();
            reports.sort();
            let mut extensions = Vec::new();
            for (key, value) in &element.extensions {
                render_ext(document, key, value, &mut extensions);
            }
            extensions.sort();
            format!(
                "sensorElement{metadata}{}{}",
                reports.concat(),
                extensions.concat()
            )
        })
        .collect();
    sorted_section(&mut out, "sensorElementList", sensor_elements);

    // Everything else, as generic sorted fields.
    let mut generic = Vec::new();
    for info in &event.certification_info {
        generic.push(format!("certificationInfo={}", identifier(info)));
    }
    if let Some(ed) = &event.error_declaration {
        let mut children = vec![format!("declarationTime={}", time(&ed.declaration_time))];
        if let Some(reason) = &ed.reason {
            children.push(format!(
                "reason={}",
                canonical_vocab(VocabKind::ErrorReason, reason)
            ));
        }
        if !ed.corrective_event_ids.is_empty() {
            let mut ids: Vec<String> = ed
                .corrective_event_ids
                .iter()
                .map(|id| format!("correctiveEventID={id}"))
                .collect();
            ids.sort();
            children.push(format!("correctiveEventIDs{}", ids.concat()));
        }
        for (key, value) in &ed.extensions {
            render_ext(document, key, value, &mut children);
        }
        children.sort();
        generic.push(format!("errorDeclaration{}", children.concat()));
    }
    for (name, place) in [
        ("readPoint", &event.read_point),
        ("bizLocation", &event.biz_location),
    ] {
        if let Some(place) = place.as_ref().filter(|p| !p.extensions.is_empty()) {
            let mut children = Vec::new();
            for (key, value) in &place.extensions {
                render_ext(document, key, value, &mut children);
            }
            children.sort();
            generic.push(format!("{name}{}", children.concat()));
        }
    }
    if !event.ilmd.is_empty() {
        let mut children = Vec::new();
        for (key, value) in &event.ilmd {
            render_ext(document, key, value, &mut children);
        }
        children.sort();
        generic.push(format!("ilmd{}", children.concat()));
    }
    for (key, value) in &event.extensions {
        render_ext(document, key, value, &mut generic);
    }
    generic.sort();
    out.push_str(&generic.concat());
    out
}

/// `ni:///sha-256;{hex}?ver=CBV2.0` of the event.
pub fn event_hash_id(document: &EpcisDocument, event: &Event) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(pre_hash_string(document, event).as_bytes());
    let mut id = String::with_capacity(14 + 64 + 11);
    id.push_str("ni:///sha-256;");
    for byte in digest {
        id.push(HEX[usize::from(byte >> 4)] as char);
        id.push(HEX[usize::from(byte & 15)] as char);
    }
    id.push_str("?ver=CBV2.0");
    id
}

/// Hash IDs of every event, in document order.
pub fn document_hash_ids(document: &EpcisDocument) -> Vec<String> {
    document
        .events
        .iter()
        .map(|event| event_hash_id(document, event))
        .collect()
}

/// Appends formatted text without a temporary string.
fn write_into(out: &mut String, arguments: std::fmt::Arguments<'_>) {
    // Writing to a String cannot fail.
    let _ = out.write_fmt(arguments);
}
