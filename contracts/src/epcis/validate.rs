//! Validation beyond the JSON schema: CBV vocabularies, identifier syntax and check digits,
//! which fields each event type and action allow, dates and times. Every problem is reported
//! with its event index and JSON pointer.

use super::cbv::{check_vocab, is_absolute_uri, VocabKind};
use super::cbv_lists::MEASUREMENT_TYPES;
use super::model::*;
use super::time::{parse_date_time, parse_offset};
use crate::gs1::dl::{looks_like_dl_uri, parse_dl_uri, DlOptions};
use crate::gs1::epc::{canonical_digital_link, EpcId};
use crate::gs1::Gs1Error;

const EPC_SCHEMES_CHECKED: &[&str] = &[
    "sgtin", "sscc", "sgln", "pgln", "gdti", "grai", "giai", "gsrn", "gsrnp",
];

/// Checks an identifier (EPC URN, EPC class, GS1 Digital Link URI or other URI).
pub fn check_identifier(value: &str) -> Result<(), String> {
    // Escape-free sgtin/sscc/sgln/pgln/lgtin with consistent lengths are valid as they stand.
    if crate::gs1::epc::is_plain_valid_epc(value) {
        return Ok(());
    }
    if let Some(rest) = value.strip_prefix("urn:epc:id:") {
        let scheme = rest.split(':').next().unwrap_or("");
        if EPC_SCHEMES_CHECKED.contains(&scheme) {
            return EpcId::parse_urn(value)
                .map(|_| ())
                .map_err(|e| e.to_string());
        }
        return if rest.contains(':') {
            Ok(())
        } else {
            Err(format!("{value:?} is not an EPC URN"))
        };
    }
    if value.starts_with("urn:epc:class:lgtin:") {
        return EpcId::parse_urn(value)
            .map(|_| ())
            .map_err(|e| e.to_string());
    }
    if value.starts_with("urn:epc:idpat:sgtin:") {
        return canonical_digital_link(value)
            .map(|_| ())
            .ok_or_else(|| format!("{value:?} is not a valid sgtin pattern"));
    }
    if looks_like_dl_uri(value) {
        return match parse_dl_uri(value, &DlOptions::default()) {
            Ok(_) => Ok(()),
            // Not a GS1 Digital Link at all: any other web URI is a valid identifier.
            Err(Gs1Error::DigitalLink(why))
                if why.starts_with("no GS1 primary key")
                    || why.starts_with("path segment")
                    || why.starts_with("no path")
                    || why.contains("neither a primary key") =>
            {
                Ok(())
            }
            Err(error) => Err(format!("invalid GS1 Digital Link URI: {error}")),
        };
    }
    if is_absolute_uri(value) {
        Ok(())
    } else {
        Err(format!("{value:?} is not a URI"))
    }
}

struct Checker<'a> {
    errors: &'a mut Vec<EpcisError>,
    event: usize,
    base: String,
}

impl Checker<'_> {
    fn error(&mut self, field: &str, reason: impl Into<String>) {
        self.errors.push(EpcisError::new(
            Some(self.event),
            format!("{}/{field}", self.base),
            reason,
        ));
    }

    /// As `check`, building the field path only when there is a problem.
    fn check_lazy(&mut self, field: impl FnOnce() -> String, result: Result<(), String>) {
        if let Err(reason) = result {
            let field = field();
            self.error(&field, reason);
        }
    }

    fn check(&mut self, field: &str, result: Result<(), String>) {
        if let Err(reason) = result {
            self.error(field, reason);
        }
    }

    fn identifiers(&mut self, field: &str, list: &[String]) {
        for (index, value) in list.iter().enumerate() {
            self.check_lazy(|| format!("{field}/{index}"), check_identifier(value));
        }
    }

    fn quantities(&mut self, field: &str, list: &[QuantityElement]) {
        for (index, element) in list.iter().enumerate() {
            self.check_lazy(
                || format!("{field}/{index}/epcClass"),
                check_identifier(&element.epc_class),
            );
            if let Some(quantity) = &element.quantity {
                if quantity.is_negative() {
                    self.error(
                        &format!("{field}/{index}/quantity"),
                        "quantity must not be negative",
                    );
                }
                if element.uom.is_none() && quantity.as_str().contains('.') {
                    self.error(
                        &format!("{field}/{index}/quantity"),
                        "a quantity without uom counts instances and must be an integer",
                    );
                }
            }
            if let Some(uom) = &element.uom {
                let valid = (2..=3).contains(&uom.len())
                    && uom
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
                if !valid {
                    self.error(
                        &format!("{field}/{index}/uom"),
                        format!("{uom:?} is not a UN/CEFACT Rec 20 unit code"),
                    );
                }
                if element.quantity.is_none() {
                    self.error(
                        &format!("{field}/{index}/uom"),
                        "uom given without quantity",
                    );
                }
            }
        }
    }

    fn forbid(&mut self, present: bool, field: &str, event_type: EventType) {
        if present {
            self.error(
                field,
                format!("{field} does not belong in an {}", event_type.name()),
            );
        }
    }
}

/// Validates one event; problems are appended to `errors`.
pub fn validate_event(
    event: &Event,
    index: usize,
    base_pointer: &str,
    errors: &mut Vec<EpcisError>,
) {
    let mut c = Checker {
        errors,
        event: index,
        base: base_pointer.to_string(),
    };
    let t = event.event_type;
    if event.event_time.is_empty() {
        // Already reported by the reader.
    } else if let Err(reason) = parse_date_time(&event.event_time) {
        c.error("eventTime", reason);
    }
    if !event.event_time_zone_offset.is_empty() {
        c.check(
            "eventTimeZoneOffset",
            parse_offset(&event.event_time_zone_offset).map(|_| ()),
        );
    }
    if let Some(record_time) = &event.record_time {
        c.check("recordTime", parse_date_time(record_time).map(|_| ()));
    }
    if let Some(id) = &event.event_id {
        if !is_absolute_uri(id) {
            c.error("eventID", format!("{id:?} is not a URI"));
        }
    }
    for (i, info) in event.certification_info.iter().enumerate() {
        if !is_absolute_uri(info) {
            c.error(
                &format!("certificationInfo/{i}"),
                format!("{info:?} is not a URI"),
            );
        }
    }
    if let Some(ed) = &event.error_declaration {
        c.check(
            "errorDeclaration/declarationTime",
            parse_date_time(&ed.declaration_time).map(|_| ()),
        );
        if let Some(reason) = &ed.reason {
            c.check(
                "errorDeclaration/reason",
                check_vocab(VocabKind::ErrorReason, reason),
            );
        }
        for (i, id) in ed.corrective_event_ids.iter().enumerate() {
            if !is_absolute_uri(id) {
                c.error(
                    &format!("errorDeclaration/correctiveEventIDs/{i}"),
                    format!("{id:?} is not a URI"),
                );
            }
        }
    }

    // Which fields each event type carries.
    let has_children = !event.child_epcs.is_empty() || !event.child_quantity_list.is_empty();
    match t {
        EventType::ObjectEvent => {
            c.forbid(event.parent_id.is_some(), "parentID", t);
            c.forbid(has_children, "childEPCs", t);
        }
        EventType::AggregationEvent | EventType::AssociationEvent => {
            c.forbid(!event.epc_list.is_empty(), "epcList", t);
            c.forbid(!event.quantity_list.is_empty(), "quantityList", t);
            c.forbid(!event.ilmd.is_empty(), "ilmd", t);
        }
        EventType::TransactionEvent => {
            c.forbid(has_children, "childEPCs", t);
            c.forbid(!event.ilmd.is_empty(), "ilmd", t);
        }
        EventType::TransformationEvent => {
            c.forbid(!event.epc_list.is_empty(), "epcList", t);
            c.forbid(!event.quantity_list.is_empty(), "quantityList", t);
            c.forbid(event.parent_id.is_some(), "parentID", t);
            c.forbid(has_children, "childEPCs", t);
        }
    }
    if t != EventType::TransformationEvent {
        let has_transformation_fields = !event.input_epc_list.is_empty()
            || !event.output_epc_list.is_empty()
            || !event.input_quantity_list.is_empty()
            || !event.output_quantity_list.is_empty()
            || event.transformation_id.is_some();
        c.forbid(
            has_transformation_fields,
            "inputEPCList/outputEPCList/transformationID",
            t,
        );
    }

    // Action rules.
    match (t, event.action) {
        (EventType::TransformationEvent, Some(_)) => {
            c.error("action", "a TransformationEvent has no action")
        }
        (EventType::TransformationEvent, None) => {
            let inputs = !event.input_epc_list.is_empty() || !event.input_quantity_list.is_empty();
            let outputs =
                !event.output_epc_list.is_empty() || !event.output_quantity_list.is_empty();
            if !inputs && !outputs {
                c.error(
                    "inputEPCList",
                    "a TransformationEvent needs inputs or outputs",
                );
            } else if event.transformation_id.is_none() && !(inputs && outputs) {
                c.error(
                    "outputEPCList",
                    "without transformationID a TransformationEvent needs both inputs and outputs",
                );
            }
        }
        (_, None) => c.error("action", "is required (ADD, OBSERVE or DELETE)"),
        (EventType::ObjectEvent, Some(action)) => {
            if event.epc_list.is_empty() && event.quantity_list.is_empty() {
                c.error("epcList", "an ObjectEvent needs epcList or quantityList");
            }
            if !event.ilmd.is_empty() && action != Action::Add {
                c.error(
                    "ilmd",
                    format!(
                        "ilmd is only allowed with action ADD, not {}",
                        action.name()
                    ),
                );
            }
        }
        (EventType::AggregationEvent, Some(action)) => {
            if action != Action::Observe && event.parent_id.is_none() {
                c.error(
                    "parentID",
                    format!("is required with action {}", action.name()),
                );
            }
            if action == Action::Add && !has_children {
                c.error(
                    "childEPCs",
                    "action ADD needs childEPCs or childQuantityList",
                );
            }
        }
        (EventType::AssociationEvent, Some(action)) => {
            if event.parent_id.is_none() {
                c.error("parentID", "is required in an AssociationEvent");
            }
            if action == Action::Add && !has_children {
                c.error(
                    "childEPCs",
                    "action ADD needs childEPCs or childQuantityList",
                );
            }
        }
        (EventType::TransactionEvent, Some(_)) => {
            if event.biz_transaction_list.is_empty() {
                c.error(
                    "bizTransactionList",
                    "a TransactionEvent needs at least one bizTransaction",
                );
            }
            if event.epc_list.is_empty()
                && event.quantity_list.is_empty()
                && event.parent_id.is_none()
            {
                c.error(
                    "epcList",
                    "a TransactionEvent needs epcList, quantityList or parentID",
                );
            }
        }
    }

    // Business-step / action coherence for the steps whose meaning fixes the action.
    if let (Some(step), Some(action)) = (&event.biz_step, event.action) {
        let word = super::cbv::cbv_word(VocabKind::BizStep, step);
        let expected = match (t, word) {
            (EventType::ObjectEvent, Some("commissioning")) => Some(Action::Add),
            (EventType::AggregationEvent, Some("packing")) => Some(Action::Add),
            (EventType::AggregationEvent, Some("unpacking")) => Some(Action::Delete),
            _ => None,
        };
        if let Some(expected) = expected.filter(|e| *e != action) {
            c.error(
                "action",
                format!(
                    "bizStep {} requires action {}, not {}",
                    word.unwrap_or(""),
                    expected.name(),
                    action.name()
                ),
            );
        }
    }

    // Vocabularies.
    if let Some(step) = &event.biz_step {
        c.check("bizStep", check_vocab(VocabKind::BizStep, step));
    }
    if let Some(disposition) = &event.disposition {
        c.check(
            "disposition",
            check_vocab(VocabKind::Disposition, disposition),
        );
    }
    if let Some(pd) = &event.persistent_disposition {
        for (i, d) in pd.set.iter().enumerate() {
            c.check_lazy(
                || format!("persistentDisposition/set/{i}"),
                check_vocab(VocabKind::Disposition, d),
            );
        }
        for (i, d) in pd.unset.iter().enumerate() {
            c.check_lazy(
                || format!("persistentDisposition/unset/{i}"),
                check_vocab(VocabKind::Disposition, d),
            );
        }
    }
    for (i, bt) in event.biz_transaction_list.iter().enumerate() {
        if let Some(kind) = &bt.kind {
            c.check_lazy(
                || format!("bizTransactionList/{i}/type"),
                check_vocab(VocabKind::BizTransactionType, kind),
            );
        }
        if !is_absolute_uri(&bt.id) {
            c.error(
                &format!("bizTransactionList/{i}/bizTransaction"),
                format!("{:?} is not a URI", bt.id),
            );
        }
    }
    for (field, list, id_name) in [
        ("sourceList", &event.source_list, "source"),
        ("destinationList", &event.destination_list, "destination"),
    ] {
        for (i, item) in list.iter().enumerate() {
            match &item.kind {
                Some(kind) => c.check_lazy(
                    || format!("{field}/{i}/type"),
                    check_vocab(VocabKind::SourceDestinationType, kind),
                ),
                None => c.error(&format!("{field}/{i}/type"), "is required"),
            }
            c.check_lazy(
                || format!("{field}/{i}/{id_name}"),
                check_identifier(&item.id),
            );
        }
    }

    // Identifiers.
    c.identifiers("epcList", &event.epc_list);
    c.identifiers("childEPCs", &event.child_epcs);
    c.identifiers("inputEPCList", &event.input_epc_list);
    c.identifiers("outputEPCList", &event.output_epc_list);
    if let Some(parent) = &event.parent_id {
        c.check("parentID", check_identifier(parent));
    }
    c.quantities("quantityList", &event.quantity_list);
    c.quantities("childQuantityList", &event.child_quantity_list);
    c.quantities("inputQuantityList", &event.input_quantity_list);
    c.quantities("outputQuantityList", &event.output_quantity_list);
    if let Some(place) = &event.read_point {
        c.check("readPoint/id", check_identifier(&place.id));
    }
    if let Some(place) = &event.biz_location {
        c.check("bizLocation/id", check_identifier(&place.id));
    }
    if let Some(id) = &event.transformation_id {
        c.check("transformationID", check_identifier(id));
    }

    // Sensor data.
    for (i, element) in event.sensor_element_list.iter().enumerate() {
        if element.reports.is_empty() {
            c.error(
                &format!("sensorElementList/{i}/sensorReport"),
                "at least one sensorReport is required",
            );
        }
        for (j, report) in element.reports.iter().enumerate() {
            if let Some(Ext::Text(kind)) = report.get("type") {
                let word = kind
                    .strip_prefix("gs1:")
                    .or_else(|| kind.strip_prefix("https://gs1.org/voc/"))
                    .unwrap_or(kind);
                if !kind.contains("://") && !MEASUREMENT_TYPES.contains(&word) {
                    c.error(
                        &format!("sensorElementList/{i}/sensorReport/{j}/type"),
                        format!("{kind:?} is not a GS1 measurement type"),
                    );
                }
            }
            for field in ["time", "startTime", "endTime"] {
                if let Some(Ext::Text(text)) = report.get(field) {
                    c.check_lazy(
                        || format!("sensorElementList/{i}/sensorReport/{j}/{field}"),
                        parse_date_time(text).map(|_| ()),
                    );
                }
            }
        }
    }

    // DSCSA ILMD: expiry must be a real date.
    if let Some(expiry) = event.ilmd_expiry() {
        let valid = expiry.len() == 10 && parse_date_time(&format!("{expiry}T00:00:00Z")).is_ok();
        if !valid {
            c.error(
                "ilmd/cbvmda:itemExpirationDate",
                format!("{expiry:?} is not a date YYYY-MM-DD"),
            );
        }
    }
}

/// Validates a whole document: header fields and every event. Empty means valid.
pub fn validate_document(document: &EpcisDocument) -> Vec<EpcisError> {
    let mut errors = Vec::new();
    if !document.creation_date.is_empty() {
        if let Err(reason) = parse_date_time(&document.creation_date) {
            errors.push(EpcisError::new(None, "/creationDate", reason));
        }
    }
    if !matches!(
        document.schema_version.as_str(),
        "2.0" | "1.2" | "1.1" | "1.0" | ""
    ) {
        errors.push(EpcisError::new(
            None,
            "/schemaVersion",
            format!("unsupported schema version {:?}", document.schema_version),
        ));
    }
    for (index, event) in document.events.iter().enumerate() {
        validate_event(
            event,
            index,
            &format!("/epcisBody/eventList/{index}"),
            &mut errors,
        );
    }
    errors
}
