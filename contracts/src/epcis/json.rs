//! The JSON-LD binding of EPCIS 2.0: read (collecting every structural problem with its JSON
//! pointer) and write.

use serde_json::{Map, Number, Value};

use super::model::*;

/// Largest document this reader accepts (bytes), and most events per document.
pub const DOCUMENT_BYTES_MAX: usize = 64 * 1024 * 1024;
pub const EVENTS_MAX: usize = 1_000_000;

/// Converts a JSON value to extension content (numbers become [`Decimal`] text).
pub fn ext_from_json(value: &Value) -> Ext {
    match value {
        Value::Null => Ext::Null,
        Value::Bool(b) => Ext::Bool(*b),
        Value::Number(n) => {
            Decimal::parse(&n.to_string()).map_or_else(|| Ext::Text(n.to_string()), Ext::Number)
        }
        Value::String(s) => Ext::Text(s.clone()),
        Value::Array(items) => Ext::List(items.iter().map(ext_from_json).collect()),
        Value::Object(map) => Ext::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), ext_from_json(v)))
                .collect(),
        ),
    }
}

/// Converts extension content back to JSON.
pub fn ext_to_json(ext: &Ext) -> Value {
    match ext {
        Ext::Null => Value::Null,
        Ext::Bool(b) => Value::Bool(*b),
        Ext::Number(d) => decimal_to_json(d),
        Ext::Text(s) => Value::String(s.clone()),
        Ext::List(items) => Value::Array(items.iter().map(ext_to_json).collect()),
        Ext::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), ext_to_json(v)))
                .collect(),
        ),
    }
}

fn decimal_to_json(decimal: &Decimal) -> Value {
    // Integers stay exact; other decimals become the nearest JSON number (correctly rounded by
    // the standard library, so a value read from JSON writes back to the same number).
    if let Ok(integer) = decimal.as_str().parse::<i64>() {
        return Value::Number(integer.into());
    }
    decimal
        .as_str()
        .parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map_or_else(|| Value::String(decimal.to_string()), Value::Number)
}

/// As [`ext_from_json`], consuming the value (no string copies).
pub fn ext_from_owned(value: Value) -> Ext {
    match value {
        Value::Null => Ext::Null,
        Value::Bool(b) => Ext::Bool(b),
        Value::Number(n) => {
            let text = n.to_string();
            Decimal::parse(&text).map_or(Ext::Text(text), Ext::Number)
        }
        Value::String(s) => Ext::Text(s),
        Value::Array(items) => Ext::List(items.into_iter().map(ext_from_owned).collect()),
        Value::Object(map) => Ext::Object(
            map.into_iter()
                .map(|(k, v)| (k, ext_from_owned(v)))
                .collect(),
        ),
    }
}

/// Reads by taking fields out of the parsed JSON: what is left over is extension content.
struct Reader {
    errors: Vec<EpcisError>,
    event: Option<usize>,
}

type Object = Map<String, Value>;

impl Reader {
    fn error(&mut self, pointer: &str, reason: impl Into<String>) {
        self.errors
            .push(EpcisError::new(self.event, pointer, reason));
    }

    fn string(&mut self, object: &mut Object, key: &str, pointer: &str) -> Option<String> {
        match object.remove(key)? {
            Value::String(s) => Some(s),
            _ => {
                self.error(&format!("{pointer}/{key}"), "must be a string");
                None
            }
        }
    }

    fn required_string(&mut self, object: &mut Object, key: &str, pointer: &str) -> String {
        if !object.contains_key(key) {
            self.error(&format!("{pointer}/{key}"), "is required");
            return String::new();
        }
        self.string(object, key, pointer).unwrap_or_default()
    }

    fn string_list(&mut self, object: &mut Object, key: &str, pointer: &str) -> Vec<String> {
        let Some(value) = object.remove(key) else {
            return Vec::new();
        };
        let Value::Array(items) = value else {
            self.error(&format!("{pointer}/{key}"), "must be an array of strings");
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            match item {
                Value::String(s) => out.push(s),
                _ => self.error(&format!("{pointer}/{key}/{index}"), "must be a string"),
            }
        }
        out
    }

    fn object(&mut self, value: Value, pointer: &str) -> Option<Object> {
        match value {
            Value::Object(map) => Some(map),
            _ => {
                self.error(pointer, "must be an object");
                None
            }
        }
    }

    fn array(&mut self, value: Value, pointer: &str) -> Vec<Value> {
        match value {
            Value::Array(items) => items,
            _ => {
                self.error(pointer, "must be an array");
                Vec::new()
            }
        }
    }

    fn quantity_list(
        &mut self,
        object: &mut Object,
        key: &str,
        pointer: &str,
    ) -> Vec<QuantityElement> {
        let Some(value) = object.remove(key) else {
            return Vec::new();
        };
        let list_pointer = format!("{pointer}/{key}");
        let items = self.array(value, &list_pointer);
        let mut out = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            let item_pointer = format!("{list_pointer}/{index}");
            let Some(mut map) = self.object(item, &item_pointer) else {
                continue;
            };
            let epc_class = self.required_string(&mut map, "epcClass", &item_pointer);
            let quantity = match map.remove("quantity") {
                None => None,
                Some(Value::Number(n)) => {
                    let parsed = Decimal::parse(&n.to_string());
                    if parsed.is_none() {
                        self.error(
                            &format!("{item_pointer}/quantity"),
                            "must be a decimal number",
                        );
                    }
                    parsed
                }
                Some(_) => {
                    self.error(&format!("{item_pointer}/quantity"), "must be a number");
                    None
                }
            };
            let uom = self.string(&mut map, "uom", &item_pointer);
            for key in map.keys() {
                self.error(
                    &format!("{item_pointer}/{key}"),
                    "unknown field in quantityElement",
                );
            }
            out.push(QuantityElement {
                epc_class,
                quantity,
                uom,
            });
        }
        out
    }

    fn place(&mut self, object: &mut Object, key: &str, pointer: &str) -> Option<Place> {
        let value = object.remove(key)?;
        let place_pointer = format!("{pointer}/{key}");
        let mut map = self.object(value, &place_pointer)?;
        let id = self.required_string(&mut map, "id", &place_pointer);
        let extensions = self.extensions(map, &place_pointer);
        Some(Place { id, extensions })
    }

    fn typed_list(
        &mut self,
        object: &mut Object,
        key: &str,
        id_key: &str,
        pointer: &str,
    ) -> Vec<TypedId> {
        let Some(value) = object.remove(key) else {
            return Vec::new();
        };
        let list_pointer = format!("{pointer}/{key}");
        let items = self.array(value, &list_pointer);
        let mut out = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            let item_pointer = format!("{list_pointer}/{index}");
            let Some(mut map) = self.object(item, &item_pointer) else {
                continue;
            };
            let kind = self.string(&mut map, "type", &item_pointer);
            let id = self.required_string(&mut map, id_key, &item_pointer);
            for extra in map.keys() {
                self.error(
                    &format!("{item_pointer}/{extra}"),
                    format!("unknown field in {key}"),
                );
            }
            out.push(TypedId { kind, id });
        }
        out
    }

    /// The fields left in `map`: extensions, which must be namespace-prefixed.
    fn extensions(&mut self, map: Object, pointer: &str) -> Vec<(String, Ext)> {
        let mut out = Vec::with_capacity(map.len());
        for (key, value) in map {
            if key.contains(':') {
                out.push((key, ext_from_owned(value)));
            } else {
                self.error(
                    &format!("{pointer}/{key}"),
                    "unknown field (extension fields need a namespace prefix)",
                );
            }
        }
        out
    }

    fn sensor_fields(&mut self, value: Value, pointer: &str) -> SensorFields {
        let Some(map) = self.object(value, pointer) else {
            return SensorFields::default();
        };
        SensorFields {
            fields: map
                .into_iter()
                .map(|(k, v)| (k, ext_from_owned(v)))
                .collect(),
        }
    }

    fn event(
        &mut self,
        value: Value,
        pointer: &str,
        document: &mut EpcisDocument,
    ) -> Option<Event> {
        let mut map = self.object(value, pointer)?;
        let type_name = self.required_string(&mut map, "type", pointer);
        let event_type = match EventType::from_name(&type_name) {
            Some(t) => t,
            None => {
                if !type_name.is_empty() {
                    self.error(
                        &format!("{pointer}/type"),
                        format!("{type_name:?} is not an EPCIS event type"),
                    );
                }
                return None;
            }
        };
        if let Some(context) = map.remove("@context") {
            read_context(&context, document);
        }
        let event_time = self.required_string(&mut map, "eventTime", pointer);
        let offset = self.required_string(&mut map, "eventTimeZoneOffset", pointer);
        let mut event = Event::new(event_type, &event_time, &offset);
        event.record_time = self.string(&mut map, "recordTime", pointer);
        event.event_id = self.string(&mut map, "eventID", pointer);
        event.certification_info = match map.get("certificationInfo") {
            Some(Value::String(_)) => self
                .string(&mut map, "certificationInfo", pointer)
                .into_iter()
                .collect(),
            Some(Value::Array(_)) => self.string_list(&mut map, "certificationInfo", pointer),
            Some(_) => {
                map.remove("certificationInfo");
                self.error(
                    &format!("{pointer}/certificationInfo"),
                    "must be a URI or an array of URIs",
                );
                Vec::new()
            }
            None => Vec::new(),
        };
        if let Some(value) = map.remove("errorDeclaration") {
            let ed_pointer = format!("{pointer}/errorDeclaration");
            if let Some(mut ed) = self.object(value, &ed_pointer) {
                let declaration_time =
                    self.required_string(&mut ed, "declarationTime", &ed_pointer);
                let reason = self.string(&mut ed, "reason", &ed_pointer);
                let corrective_event_ids =
                    self.string_list(&mut ed, "correctiveEventIDs", &ed_pointer);
                let extensions = self.extensions(ed, &ed_pointer);
                event.error_declaration = Some(ErrorDeclaration {
                    declaration_time,
                    reason,
                    corrective_event_ids,
                    extensions,
                });
            }
        }
        event.epc_list = self.string_list(&mut map, "epcList", pointer);
        event.parent_id = self.string(&mut map, "parentID", pointer);
        event.child_epcs = self.string_list(&mut map, "childEPCs", pointer);
        event.input_epc_list = self.string_list(&mut map, "inputEPCList", pointer);
        event.output_epc_list = self.string_list(&mut map, "outputEPCList", pointer);
        event.quantity_list = self.quantity_list(&mut map, "quantityList", pointer);
        event.child_quantity_list = self.quantity_list(&mut map, "childQuantityList", pointer);
        event.input_quantity_list = self.quantity_list(&mut map, "inputQuantityList", pointer);
        event.output_quantity_list = self.quantity_list(&mut map, "outputQuantityList", pointer);
        if let Some(action) = self.string(&mut map, "action", pointer) {
            match Action::from_name(&action) {
                Some(a) => event.action = Some(a),
                None => self.error(
                    &format!("{pointer}/action"),
                    format!("{action:?} is not an action (ADD, OBSERVE or DELETE)"),
                ),
            }
        }
        event.transformation_id = self.string(&mut map, "transformationID", pointer);
        event.biz_step = self.string(&mut map, "bizStep", pointer);
        event.disposition = self.string(&mut map, "disposition", pointer);
        if let Some(value) = map.remove("persistentDisposition") {
            let pd_pointer = format!("{pointer}/persistentDisposition");
            if let Some(mut pd) = self.object(value, &pd_pointer) {
                let set = self.string_list(&mut pd, "set", &pd_pointer);
                let unset = self.string_list(&mut pd, "unset", &pd_pointer);
                for key in pd.keys() {
                    self.error(
                        &format!("{pd_pointer}/{key}"),
                        "unknown field in persistentDisposition",
                    );
                }
                event.persistent_disposition = Some(PersistentDisposition { set, unset });
            }
        }
        event.read_point = self.place(&mut map, "readPoint", pointer);
        event.biz_location = self.place(&mut map, "bizLocation", pointer);
        event.biz_transaction_list =
            self.typed_list(&mut map, "bizTransactionList", "bizTransaction", pointer);
        event.source_list = self.typed_list(&mut map, "sourceList", "source", pointer);
        event.destination_list =
            self.typed_list(&mut map, "destinationList", "destination", pointer);
        if let Some(value) = map.remove("sensorElementList") {
            let list_pointer = format!("{pointer}/sensorElementList");
            for (index, item) in self.array(value, &list_pointer).into_iter().enumerate() {
                let item_pointer = format!("{list_pointer}/{index}");
                let Some(mut element) = self.object(item, &item_pointer) else {
                    continue;
                };
                let metadata = element
                    .remove("sensorMetadata")
                    .map(|m| self.sensor_fields(m, &format!("{item_pointer}/sensorMetadata")));
                let mut reports = Vec::new();
                if let Some(list) = element.remove("sensorReport") {
                    let reports_pointer = format!("{item_pointer}/sensorReport");
                    for (report_index, report) in
                        self.array(list, &reports_pointer).into_iter().enumerate()
                    {
                        reports.push(
                            self.sensor_fields(
                                report,
                                &format!("{reports_pointer}/{report_index}"),
                            ),
                        );
                    }
                }
                let extensions = self.extensions(element, &item_pointer);
                event.sensor_element_list.push(SensorElement {
                    metadata,
                    reports,
                    extensions,
                });
            }
        }
        if let Some(value) = map.remove("ilmd") {
            let ilmd_pointer = format!("{pointer}/ilmd");
            if let Some(ilmd) = self.object(value, &ilmd_pointer) {
                event.ilmd = self.extensions(ilmd, &ilmd_pointer);
            }
        }
        event.extensions = self.extensions(map, pointer);
        Some(event)
    }
}

fn read_context(context: &Value, document: &mut EpcisDocument) {
    let items: Vec<&Value> = match context {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    for item in items {
        match item {
            Value::String(url) if !document.context_urls.contains(url) => {
                document.context_urls.push(url.clone());
            }
            Value::Object(map) => {
                for (prefix, iri) in map {
                    if let Value::String(iri) = iri {
                        document.bind_namespace(prefix, iri);
                    }
                }
            }
            _ => {}
        }
    }
}

fn read_header(reader: &mut Reader, value: Value, header: &mut Header) {
    let pointer = "/epcisHeader";
    let Some(map) = reader.object(value, pointer) else {
        return;
    };
    for (key, value) in map {
        if key == "epcisMasterData" {
            let md_pointer = format!("{pointer}/epcisMasterData");
            let Some(mut md) = reader.object(value, &md_pointer) else {
                continue;
            };
            let Some(list) = md.remove("vocabularyList") else {
                continue;
            };
            let list_pointer = format!("{md_pointer}/vocabularyList");
            for (index, vocabulary) in reader.array(list, &list_pointer).into_iter().enumerate() {
                let vocab_pointer = format!("{list_pointer}/{index}");
                let Some(mut vocabulary) = reader.object(vocabulary, &vocab_pointer) else {
                    continue;
                };
                let vocabulary_type =
                    reader.required_string(&mut vocabulary, "type", &vocab_pointer);
                let mut elements = Vec::new();
                if let Some(list) = vocabulary.remove("vocabularyElementList") {
                    let elements_pointer = format!("{vocab_pointer}/vocabularyElementList");
                    for (element_index, element) in reader
                        .array(list, &elements_pointer)
                        .into_iter()
                        .enumerate()
                    {
                        let element_pointer = format!("{elements_pointer}/{element_index}");
                        let Some(mut element) = reader.object(element, &element_pointer) else {
                            continue;
                        };
                        let id = reader.required_string(&mut element, "id", &element_pointer);
                        let mut attributes = Vec::new();
                        if let Some(Value::Array(list)) = element.remove("attributes") {
                            for attribute in list {
                                if let Value::Object(mut attribute) = attribute {
                                    let attribute_id = match attribute.remove("id") {
                                        Some(Value::String(id)) => id,
                                        _ => String::new(),
                                    };
                                    let value = attribute
                                        .remove("attribute")
                                        .map_or(Ext::Null, ext_from_owned);
                                    attributes.push((attribute_id, value));
                                }
                            }
                        }
                        elements.push(VocabularyElement { id, attributes });
                    }
                }
                header.master_data.push(Vocabulary {
                    vocabulary_type,
                    elements,
                });
            }
        } else if key.ends_with(":dscsaTransactionStatement") {
            if let Ext::Object(fields) = ext_from_owned(value) {
                let field = |name: &str| {
                    fields
                        .iter()
                        .find(|(k, _)| k.rsplit(':').next() == Some(name))
                        .map(|(_, v)| v)
                };
                let affirm = matches!(field("affirmTransactionStatement"), Some(Ext::Bool(true)))
                    || matches!(field("affirmTransactionStatement"), Some(Ext::Text(t)) if t == "true");
                let legal_notice = match field("legalNotice") {
                    Some(Ext::Text(t)) => Some(t.clone()),
                    _ => None,
                };
                header.transaction_statement = Some(TransactionStatement {
                    affirm_transaction_statement: affirm,
                    legal_notice,
                });
            }
        } else if key == "sbdh:sender" || key == "sbdh:receiver" || key == "sbdh:instanceIdentifier"
        {
            let text = value.as_str().map(str::to_string);
            match key.as_str() {
                "sbdh:sender" => header.sender = text,
                "sbdh:receiver" => header.receiver = text,
                _ => header.instance_identifier = text,
            }
        } else if key.ends_with(":guidelineVersion") {
            header.guideline_version = value.as_str().map(str::to_string);
        } else {
            header.extensions.push((key, ext_from_owned(value)));
        }
    }
}

/// Reads an EPCIS 2.0 JSON-LD document (EPCISDocument or EPCISQueryDocument). Returns every
/// structural problem found, each with its event index and JSON pointer.
pub fn read_json_ld(text: &str) -> Result<EpcisDocument, Vec<EpcisError>> {
    if text.len() > DOCUMENT_BYTES_MAX {
        return Err(vec![EpcisError::new(
            None,
            "",
            format!("document larger than {DOCUMENT_BYTES_MAX} bytes"),
        )]);
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| vec![EpcisError::new(None, "", format!("invalid JSON: {e}"))])?;
    read_json_value(value)
}

/// As [`read_json_ld`], from a parsed JSON value (consumed).
pub fn read_json_value(value: Value) -> Result<EpcisDocument, Vec<EpcisError>> {
    match read_json_value_partial(value) {
        (Some(document), errors) if errors.is_empty() => Ok(document),
        (_, errors) => Err(errors),
    }
}

/// As [`read_json_value`], but also returns what could be read when there are problems: the
/// document is `Some` when every event was read (possibly with missing fields), so semantic
/// validation can still run on it with correct event indices.
pub fn read_json_value_partial(value: Value) -> (Option<EpcisDocument>, Vec<EpcisError>) {
    match read_json_value_inner(value) {
        Ok((document, errors, all_events_read)) => (all_events_read.then_some(document), errors),
        Err(errors) => (None, errors),
    }
}

fn read_json_value_inner(
    value: Value,
) -> Result<(EpcisDocument, Vec<EpcisError>, bool), Vec<EpcisError>> {
    let mut reader = Reader {
        errors: Vec::new(),
        event: None,
    };
    let mut document = EpcisDocument::default();
    let Some(mut root) = reader.object(value, "") else {
        return Err(reader.errors);
    };
    match root.remove("@context") {
        Some(context) => read_context(&context, &mut document),
        None => reader.error("/@context", "is required"),
    }
    let document_type = reader.required_string(&mut root, "type", "");
    let is_query = document_type == "EPCISQueryDocument";
    if !is_query && document_type != "EPCISDocument" && !document_type.is_empty() {
        reader.error(
            "/type",
            format!("{document_type:?} is not EPCISDocument or EPCISQueryDocument"),
        );
    }
    document.schema_version = reader.required_string(&mut root, "schemaVersion", "");
    document.creation_date = reader.required_string(&mut root, "creationDate", "");
    document.id = reader.string(&mut root, "id", "");
    if let Some(header) = root.remove("epcisHeader") {
        let mut parsed = Header::default();
        read_header(&mut reader, header, &mut parsed);
        document.header = Some(parsed);
    }
    let body = root.remove("epcisBody");
    for (key, value) in root {
        document.extensions.push((key, ext_from_owned(value)));
    }
    let Some(body) = body else {
        reader.error("/epcisBody", "is required");
        return Err(reader.errors);
    };
    let Some(mut body) = reader.object(body, "/epcisBody") else {
        return Err(reader.errors);
    };
    let (list, list_pointer) = if is_query {
        let results = match body.remove("queryResults") {
            Some(Value::Object(results)) => Some(results),
            _ => None,
        };
        let mut list = None;
        if let Some(mut results) = results {
            let query_name = results
                .get("queryName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let subscription_id = results
                .get("subscriptionID")
                .and_then(Value::as_str)
                .map(str::to_string);
            document
                .extensions
                .push(("queryName".to_string(), Ext::Text(query_name)));
            if let Some(subscription_id) = subscription_id {
                document
                    .extensions
                    .push(("subscriptionID".to_string(), Ext::Text(subscription_id)));
            }
            if let Some(Value::Object(mut results_body)) = results.remove("resultsBody") {
                list = results_body.remove("eventList");
            }
        }
        (list, "/epcisBody/queryResults/resultsBody/eventList")
    } else {
        (body.remove("eventList"), "/epcisBody/eventList")
    };
    let Some(list) = list else {
        reader.error(list_pointer, "is required");
        return Err(reader.errors);
    };
    let events = reader.array(list, list_pointer);
    if events.len() > EVENTS_MAX {
        reader.error(list_pointer, format!("more than {EVENTS_MAX} events"));
        return Err(reader.errors);
    }
    let event_count = events.len();
    document.events.reserve(event_count);
    for (index, event) in events.into_iter().enumerate() {
        reader.event = Some(index);
        if let Some(event) = reader.event(event, &format!("{list_pointer}/{index}"), &mut document)
        {
            document.events.push(event);
        }
    }
    let all_events_read = document.events.len() == event_count;
    Ok((document, reader.errors, all_events_read))
}

fn put(map: &mut Map<String, Value>, key: &str, value: Value) {
    map.insert(key.to_string(), value);
}

fn put_opt(map: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(value) = value {
        put(map, key, Value::String(value.clone()));
    }
}

fn put_list(map: &mut Map<String, Value>, key: &str, list: &[String]) {
    if !list.is_empty() {
        put(
            map,
            key,
            Value::Array(list.iter().cloned().map(Value::String).collect()),
        );
    }
}

fn put_extensions(map: &mut Map<String, Value>, extensions: &[(String, Ext)]) {
    for (key, value) in extensions {
        put(map, key, ext_to_json(value));
    }
}

fn quantity_json(list: &[QuantityElement]) -> Value {
    Value::Array(
        list.iter()
            .map(|q| {
                let mut map = Map::new();
                put(&mut map, "epcClass", Value::String(q.epc_class.clone()));
                if let Some(quantity) = &q.quantity {
                    put(&mut map, "quantity", decimal_to_json(quantity));
                }
                put_opt(&mut map, "uom", &q.uom);
                Value::Object(map)
            })
            .collect(),
    )
}

fn typed_json(list: &[TypedId], id_key: &str) -> Value {
    Value::Array(
        list.iter()
            .map(|t| {
                let mut map = Map::new();
                if let Some(k) = &t.kind {
                    put(&mut map, "type", Value::String(k.clone()));
                }
                put(&mut map, id_key, Value::String(t.id.clone()));
                Value::Object(map)
            })
            .collect(),
    )
}

fn place_json(place: &Place) -> Value {
    let mut map = Map::new();
    put(&mut map, "id", Value::String(place.id.clone()));
    put_extensions(&mut map, &place.extensions);
    Value::Object(map)
}

fn sensor_fields_json(fields: &SensorFields) -> Value {
    Value::Object(
        fields
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), ext_to_json(v)))
            .collect(),
    )
}

/// Writes one event as JSON-LD (values exactly as the model holds them).
pub fn event_to_json(event: &Event) -> Value {
    let mut map = Map::new();
    put(
        &mut map,
        "type",
        Value::String(event.event_type.name().to_string()),
    );
    put(
        &mut map,
        "eventTime",
        Value::String(event.event_time.clone()),
    );
    put(
        &mut map,
        "eventTimeZoneOffset",
        Value::String(event.event_time_zone_offset.clone()),
    );
    put_opt(&mut map, "recordTime", &event.record_time);
    put_opt(&mut map, "eventID", &event.event_id);
    match event.certification_info.as_slice() {
        [] => {}
        [one] => put(&mut map, "certificationInfo", Value::String(one.clone())),
        many => put_list(&mut map, "certificationInfo", many),
    }
    if let Some(ed) = &event.error_declaration {
        let mut ed_map = Map::new();
        put(
            &mut ed_map,
            "declarationTime",
            Value::String(ed.declaration_time.clone()),
        );
        if let Some(reason) = &ed.reason {
            put(&mut ed_map, "reason", Value::String(reason.clone()));
        }
        put_list(&mut ed_map, "correctiveEventIDs", &ed.corrective_event_ids);
        put_extensions(&mut ed_map, &ed.extensions);
        put(&mut map, "errorDeclaration", Value::Object(ed_map));
    }
    put_list(&mut map, "epcList", &event.epc_list);
    put_opt(&mut map, "parentID", &event.parent_id);
    put_list(&mut map, "childEPCs", &event.child_epcs);
    put_list(&mut map, "inputEPCList", &event.input_epc_list);
    put_list(&mut map, "outputEPCList", &event.output_epc_list);
    for (key, list) in [
        ("quantityList", &event.quantity_list),
        ("childQuantityList", &event.child_quantity_list),
        ("inputQuantityList", &event.input_quantity_list),
        ("outputQuantityList", &event.output_quantity_list),
    ] {
        if !list.is_empty() {
            put(&mut map, key, quantity_json(list));
        }
    }
    if let Some(action) = event.action {
        put(&mut map, "action", Value::String(action.name().to_string()));
    }
    put_opt(&mut map, "transformationID", &event.transformation_id);
    if let Some(step) = &event.biz_step {
        put(&mut map, "bizStep", Value::String(step.clone()));
    }
    if let Some(disposition) = &event.disposition {
        put(&mut map, "disposition", Value::String(disposition.clone()));
    }
    if let Some(pd) = &event.persistent_disposition {
        let mut pd_map = Map::new();
        put_list(&mut pd_map, "set", &pd.set);
        put_list(&mut pd_map, "unset", &pd.unset);
        put(&mut map, "persistentDisposition", Value::Object(pd_map));
    }
    if let Some(place) = &event.read_point {
        put(&mut map, "readPoint", place_json(place));
    }
    if let Some(place) = &event.biz_location {
        put(&mut map, "bizLocation", place_json(place));
    }
    if !event.biz_transaction_list.is_empty() {
        put(
            &mut map,
            "bizTransactionList",
            typed_json(&event.biz_transaction_list, "bizTransaction"),
        );
    }
    if !event.source_list.is_empty() {
        put(
            &mut map,
            "sourceList",
            typed_json(&event.source_list, "source"),
        );
    }
    if !event.destination_list.is_empty() {
        put(
            &mut map,
            "destinationList",
            typed_json(&event.destination_list, "destination"),
        );
    }
    if !event.sensor_element_list.is_empty() {
        let elements = event
            .sensor_element_list
            .iter()
            .map(|element| {
                let mut element_map = Map::new();
                if let Some(metadata) = &element.metadata {
                    put(
                        &mut element_map,
                        "sensorMetadata",
                        sensor_fields_json(metadata),
                    );
                }
                put(
                    &mut element_map,
                    "sensorReport",
                    Value::Array(element.reports.iter().map(sensor_fields_json).collect()),
                );
                put_extensions(&mut element_map, &element.extensions);
                Value::Object(element_map)
            })
            .collect();
        put(&mut map, "sensorElementList", Value::Array(elements));
    }
    if !event.ilmd.is_empty() {
        let mut ilmd = Map::new();
        put_extensions(&mut ilmd, &event.ilmd);
        put(&mut map, "ilmd", Value::Object(ilmd));
    }
    put_extensions(&mut map, &event.extensions);
    Value::Object(map)
}

/// The standard EPCIS 2.0 JSON-LD context.
pub const EPCIS_CONTEXT_URL: &str =
    "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld";

/// Writes the document as EPCIS 2.0 JSON-LD.
pub fn write_json_ld(document: &EpcisDocument) -> Value {
    let mut root = Map::new();
    let mut context: Vec<Value> = if document.context_urls.is_empty() {
        vec![Value::String(EPCIS_CONTEXT_URL.to_string())]
    } else {
        document
            .context_urls
            .iter()
            .cloned()
            .map(Value::String)
            .collect()
    };
    let mut namespaces = document.namespaces.clone();
    if let Some(header) = &document.header {
        let uses_gs1ushc =
            header.transaction_statement.is_some() || header.guideline_version.is_some();
        let uses_sbdh = header.sender.is_some()
            || header.receiver.is_some()
            || header.instance_identifier.is_some();
        if uses_gs1ushc && document.namespace("gs1ushc").is_none() {
            namespaces.push((
                "gs1ushc".to_string(),
                "http://epcis.gs1us.org/hc/ns".to_string(),
            ));
        }
        if uses_sbdh && document.namespace("sbdh").is_none() {
            namespaces.push((
                "sbdh".to_string(),
                "http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader".to_string(),
            ));
        }
    }
    for (prefix, iri) in &namespaces {
        let mut binding = Map::new();
        put(&mut binding, prefix, Value::String(iri.clone()));
        context.push(Value::Object(binding));
    }
    put(&mut root, "@context", Value::Array(context));
    let query_name = document.extensions.iter().find(|(k, _)| k == "queryName");
    put(
        &mut root,
        "type",
        Value::String(
            if query_name.is_some() {
                "EPCISQueryDocument"
            } else {
                "EPCISDocument"
            }
            .to_string(),
        ),
    );
    put(&mut root, "schemaVersion", Value::String("2.0".to_string()));
    put(
        &mut root,
        "creationDate",
        Value::String(document.creation_date.clone()),
    );
    put_opt(&mut root, "id", &document.id);
    for (key, value) in document
        .extensions
        .iter()
        .filter(|(k, _)| k != "queryName" && k != "subscriptionID")
    {
        put(&mut root, key, ext_to_json(value));
    }
    if let Some(header) = &document.header {
        let mut header_map = Map::new();
        if !header.master_data.is_empty() {
            let vocabularies = header
                .master_data
                .iter()
                .map(|vocabulary| {
                    let elements = vocabulary
                        .elements
                        .iter()
                        .map(|element| {
                            let attributes = element
                                .attributes
                                .iter()
                                .map(|(id, value)| {
                                    let mut attribute = Map::new();
                                    put(&mut attribute, "id", Value::String(id.clone()));
                                    put(&mut attribute, "attribute", ext_to_json(value));
                                    Value::Object(attribute)
                                })
                                .collect();
                            let mut element_map = Map::new();
                            put(&mut element_map, "id", Value::String(element.id.clone()));
                            put(&mut element_map, "attributes", Value::Array(attributes));
                            Value::Object(element_map)
                        })
                        .collect();
                    let mut vocabulary_map = Map::new();
                    put(
                        &mut vocabulary_map,
                        "type",
                        Value::String(vocabulary.vocabulary_type.clone()),
                    );
                    put(
                        &mut vocabulary_map,
                        "vocabularyElementList",
                        Value::Array(elements),
                    );
                    Value::Object(vocabulary_map)
                })
                .collect();
            let mut master = Map::new();
            put(&mut master, "vocabularyList", Value::Array(vocabularies));
            put(&mut header_map, "epcisMasterData", Value::Object(master));
        }
        if let Some(version) = &header.guideline_version {
            put(
                &mut header_map,
                "gs1ushc:guidelineVersion",
                Value::String(version.clone()),
            );
        }
        if let Some(statement) = &header.transaction_statement {
            let mut ts = Map::new();
            put(
                &mut ts,
                "gs1ushc:affirmTransactionStatement",
                Value::Bool(statement.affirm_transaction_statement),
            );
            if let Some(notice) = &statement.legal_notice {
                put(
                    &mut ts,
                    "gs1ushc:legalNotice",
                    Value::String(notice.clone()),
                );
            }
            put(
                &mut header_map,
                "gs1ushc:dscsaTransactionStatement",
                Value::Object(ts),
            );
        }
        put_opt(&mut header_map, "sbdh:sender", &header.sender);
        put_opt(&mut header_map, "sbdh:receiver", &header.receiver);
        put_opt(
            &mut header_map,
            "sbdh:instanceIdentifier",
            &header.instance_identifier,
        );
        put_extensions(&mut header_map, &header.extensions);
        put(&mut root, "epcisHeader", Value::Object(header_map));
    }
    let events = Value::Array(document.events.iter().map(event_to_json).collect());
    let mut body = Map::new();
    match query_name {
        Some((_, name)) => {
            let mut results = Map::new();
            put(&mut results, "queryName", ext_to_json(name));
            if let Some((_, id)) = document
                .extensions
                .iter()
                .find(|(k, _)| k == "subscriptionID")
            {
                put(&mut results, "subscriptionID", ext_to_json(id));
            }
            let mut results_body = Map::new();
            put(&mut results_body, "eventList", events);
            put(&mut results, "resultsBody", Value::Object(results_body));
            put(&mut body, "queryResults", Value::Object(results));
        }
        None => put(&mut body, "eventList", events),
    }
    put(&mut root, "epcisBody", Value::Object(body));
    Value::Object(root)
}
