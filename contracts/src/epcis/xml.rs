//! The XML binding: read EPCIS 2.0 XML and EPCIS 1.2 XML as the GS1 US DSCSA guideline uses it
//! (SBDH, master data, `gs1ushc:dscsaTransactionStatement`, 1.2 `extension` wrappers), and
//! write EPCIS 2.0 XML. Reading maps the XML onto the JSON-LD shape and reuses its reader, so
//! both bindings give the same model.

use quick_xml::events::Event as XmlEvent;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use serde_json::{Map, Number, Value};

use super::cbv::{urn_vocab, VocabKind};
use super::json::{read_json_value_partial, EPCIS_CONTEXT_URL};
use super::model::*;

/// Deepest element nesting accepted.
const DEPTH_MAX: usize = 64;
const CBV_MDA_XML: &str = "urn:epcglobal:cbv:mda";
const CBV_MDA_JSON: &str = "urn:epcglobal:cbv:mda:";

#[derive(Clone, Debug, Default)]
struct Node {
    namespace: Option<String>,
    prefix: Option<String>,
    local: String,
    /// (prefix, local, value); xmlns declarations excluded.
    attributes: Vec<(Option<String>, String, String)>,
    children: Vec<Node>,
    text: String,
}

impl Node {
    fn child(&self, local: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.local == local)
    }

    fn text(&self) -> String {
        self.text.trim().to_string()
    }

    fn attribute(&self, local: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(p, l, _)| p.is_none() && l == local)
            .map(|(_, _, v)| v.as_str())
    }

    fn find(&self, local: &str) -> Option<&Node> {
        if self.local == local {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(local))
    }
}

fn xml_error(reason: impl Into<String>) -> Vec<EpcisError> {
    vec![EpcisError::new(None, "", reason)]
}

/// Parses XML into a tree, collecting namespace declarations (prefix, IRI).
/// (prefix, IRI) namespace declarations.
type Namespaces = Vec<(String, String)>;

fn parse_tree(text: &str) -> Result<(Node, Namespaces), Vec<EpcisError>> {
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Node> = Vec::new();
    let mut namespaces: Vec<(String, String)> = Vec::new();
    let mut root: Option<Node> = None;
    let fail = |e: &dyn std::fmt::Display, position: u64| {
        xml_error(format!("XML error at byte {position}: {e}"))
    };
    loop {
        let position = reader.buffer_position();
        let (resolved, event) = reader
            .read_resolved_event()
            .map_err(|e| fail(&e, position))?;
        let namespace = match resolved {
            ResolveResult::Bound(ns) => Some(String::from_utf8_lossy(ns.as_ref()).into_owned()),
            _ => None,
        };
        let is_empty = matches!(event, XmlEvent::Empty(_));
        match event {
            XmlEvent::Start(start) | XmlEvent::Empty(start) => {
                let name = start.name();
                let mut node = Node {
                    namespace,
                    prefix: name
                        .prefix()
                        .map(|p| String::from_utf8_lossy(p.as_ref()).into_owned()),
                    local: String::from_utf8_lossy(name.local_name().as_ref()).into_owned(),
                    ..Node::default()
                };
                for attribute in start.attributes() {
                    let attribute = attribute.map_err(|e| fail(&e, position))?;
                    let key = String::from_utf8_lossy(attribute.key.as_ref()).into_owned();
                    let value = attribute
                        .unescape_value()
                        .map_err(|e| fail(&e, position))?
                        .into_owned();
                    if let Some(prefix) = key.strip_prefix("xmlns:") {
                        namespaces.push((prefix.to_string(), value));
                    } else if key != "xmlns" {
                        let (prefix, local) = match key.split_once(':') {
                            Some((p, l)) => (Some(p.to_string()), l.to_string()),
                            None => (None, key),
                        };
                        node.attributes.push((prefix, local, value));
                    }
                }
                if is_empty {
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(node),
                        None => root = Some(node),
                    }
                } else {
                    if stack.len() >= DEPTH_MAX {
                        return Err(xml_error(format!(
                            "XML nested deeper than {DEPTH_MAX} elements"
                        )));
                    }
                    stack.push(node);
                }
            }
            XmlEvent::End(_) => {
                let node = stack.pop().ok_or_else(|| xml_error("unbalanced end tag"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            XmlEvent::Text(text) => {
                if let Some(node) = stack.last_mut() {
                    node.text
                        .push_str(&text.unescape().map_err(|e| fail(&e, position))?);
                }
            }
            XmlEvent::CData(data) => {
                if let Some(node) = stack.last_mut() {
                    node.text
                        .push_str(&String::from_utf8_lossy(&data.into_inner()));
                }
            }
            XmlEvent::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(xml_error("unclosed element at end of document"));
    }
    let root = root.ok_or_else(|| xml_error("no root element"))?;
    Ok((root, namespaces))
}

fn json_iri(iri: &str) -> String {
    if iri == CBV_MDA_XML {
        CBV_MDA_JSON.to_string()
    } else {
        iri.to_string()
    }
}

fn number_or_string(text: &str) -> Value {
    match Decimal::parse(text) {
        Some(decimal) => match serde_json::from_str::<Number>(decimal.as_str()) {
            Ok(number) => Value::Number(number),
            Err(_) => Value::String(text.to_string()),
        },
        None => Value::String(text.to_string()),
    }
}

fn qualified(node: &Node) -> String {
    match &node.prefix {
        Some(prefix) => format!("{prefix}:{}", node.local),
        None => node.local.clone(),
    }
}

/// An extension element as JSON: text, or an object of its children (repeats become arrays).
fn extension_json(node: &Node) -> Value {
    if node.children.is_empty() {
        return Value::String(node.text());
    }
    let mut map = Map::new();
    for child in &node.children {
        insert_grouped(&mut map, qualified(child), extension_json(child));
    }
    Value::Object(map)
}

/// Inserts a field; a repeated element name becomes an array of its values.
fn insert_grouped(map: &mut Map<String, Value>, key: String, value: Value) {
    match map.get_mut(&key) {
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            map.insert(key, value);
        }
    }
}

/// Children of an event, with EPCIS 1.2 `extension` / `baseExtension` wrappers flattened.
fn flattened_children(node: &Node) -> Vec<&Node> {
    let mut out = Vec::new();
    for child in &node.children {
        if child.namespace.is_none()
            && matches!(child.local.as_str(), "extension" | "baseExtension")
        {
            out.extend(flattened_children(child));
        } else {
            out.push(child);
        }
    }
    out
}

fn texts(node: &Node, child_local: &str) -> Value {
    Value::Array(
        node.children
            .iter()
            .filter(|c| c.local == child_local)
            .map(|c| Value::String(c.text()))
            .collect(),
    )
}

fn sensor_attributes(node: &Node) -> Value {
    let mut map = Map::new();
    for (prefix, local, value) in &node.attributes {
        if prefix.as_deref() == Some("xsi") {
            continue;
        }
        let key = match prefix {
            Some(prefix) => format!("{prefix}:{local}"),
            None => local.clone(),
        };
        let json = match local.as_str() {
            _ if prefix.is_some() => Value::String(value.clone()),
            "value" | "minValue" | "maxValue" | "meanValue" | "sDev" | "percRank" | "percValue" => {
                number_or_string(value)
            }
            "booleanValue" => match value.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::String(value.clone()),
            },
            _ => Value::String(value.clone()),
        };
        map.insert(key, json);
    }
    for child in &node.children {
        insert_grouped(&mut map, qualified(child), extension_json(child));
    }
    Value::Object(map)
}

fn event_json(node: &Node) -> Value {
    let mut map = Map::new();
    map.insert("type".to_string(), Value::String(node.local.clone()));
    for child in flattened_children(node) {
        let name = child.local.as_str();
        if child.namespace.is_some() {
            insert_grouped(&mut map, qualified(child), extension_json(child));
            continue;
        }
        let value = match name {
            "epcList" | "childEPCs" | "inputEPCList" | "outputEPCList" => texts(child, "epc"),
            "quantityList" | "childQuantityList" | "inputQuantityList" | "outputQuantityList" => {
                Value::Array(
                    child
                        .children
                        .iter()
                        .filter(|q| q.local == "quantityElement")
                        .map(|q| {
                            let mut element = Map::new();
                            if let Some(class) = q.child("epcClass") {
                                element.insert("epcClass".to_string(), Value::String(class.text()));
                            }
                            if let Some(quantity) = q.child("quantity") {
                                element.insert(
                                    "quantity".to_string(),
                                    number_or_string(&quantity.text()),
                                );
                            }
                            if let Some(uom) = q.child("uom") {
                                element.insert("uom".to_string(), Value::String(uom.text()));
                            }
                            Value::Object(element)
                        })
                        .collect(),
                )
            }
            "readPoint" | "bizLocation" => {
                let mut place = Map::new();
                for part in flattened_children(child) {
                    if part.namespace.is_none() && part.local == "id" {
                        place.insert("id".to_string(), Value::String(part.text()));
                    } else {
                        insert_grouped(&mut place, qualified(part), extension_json(part));
                    }
                }
                Value::Object(place)
            }
            "bizTransactionList" | "sourceList" | "destinationList" => {
                let item_name = match name {
                    "bizTransactionList" => "bizTransaction",
                    "sourceList" => "source",
                    _ => "destination",
                };
                Value::Array(
                    child
                        .children
                        .iter()
                        .filter(|i| i.local == item_name)
                        .map(|i| {
                            let mut item = Map::new();
                            if let Some(kind) = i.attribute("type") {
                                item.insert("type".to_string(), Value::String(kind.to_string()));
                            }
                            item.insert(item_name.to_string(), Value::String(i.text()));
                            Value::Object(item)
                        })
                        .collect(),
                )
            }
            "errorDeclaration" => {
                let mut ed = Map::new();
                for part in flattened_children(child) {
                    match (part.namespace.is_none(), part.local.as_str()) {
                        (true, "declarationTime") | (true, "reason") => {
                            ed.insert(part.local.clone(), Value::String(part.text()));
                        }
                        (true, "correctiveEventIDs") => {
                            ed.insert(
                                "correctiveEventIDs".to_string(),
                                texts(part, "correctiveEventID"),
                            );
                        }
                        _ => {
                            insert_grouped(&mut ed, qualified(part), extension_json(part));
                        }
                    }
                }
                Value::Object(ed)
            }
            "persistentDisposition" => {
                let mut pd = Map::new();
                let set = texts(child, "set");
                let unset = texts(child, "unset");
                if set.as_array().is_some_and(|a| !a.is_empty()) {
                    pd.insert("set".to_string(), set);
                }
                if unset.as_array().is_some_and(|a| !a.is_empty()) {
                    pd.insert("unset".to_string(), unset);
                }
                Value::Object(pd)
            }
            "sensorElementList" => Value::Array(
                child
                    .children
                    .iter()
                    .filter(|e| e.local == "sensorElement")
                    .map(|element| {
                        let mut out = Map::new();
                        let mut reports = Vec::new();
                        for part in &element.children {
                            match (part.namespace.is_none(), part.local.as_str()) {
                                (true, "sensorMetadata") => {
                                    out.insert(
                                        "sensorMetadata".to_string(),
                                        sensor_attributes(part),
                                    );
                                }
                                (true, "sensorReport") => reports.push(sensor_attributes(part)),
                                _ => {
                                    insert_grouped(&mut out, qualified(part), extension_json(part));
                                }
                            }
                        }
                        out.insert("sensorReport".to_string(), Value::Array(reports));
                        Value::Object(out)
                    })
                    .collect(),
            ),
            "ilmd" => {
                let mut ilmd = Map::new();
                for part in flattened_children(child) {
                    insert_grouped(&mut ilmd, qualified(part), extension_json(part));
                }
                Value::Object(ilmd)
            }
            _ => Value::String(child.text()),
        };
        map.insert(name.to_string(), value);
    }
    Value::Object(map)
}

fn events_of(body: &Node) -> Vec<&Node> {
    let Some(list) = body.find("EventList") else {
        return Vec::new();
    };
    flattened_children(list)
}

/// Reads the XML binding (EPCIS 2.0, or 1.2 as used by the GS1 US DSCSA guideline).
pub fn read_xml(text: &str) -> Result<EpcisDocument, Vec<EpcisError>> {
    match read_xml_partial(text) {
        (Some(document), errors) if errors.is_empty() => Ok(document),
        (_, errors) => Err(errors),
    }
}

/// As [`read_xml`], also returning the document when every event could be read (see
/// [`super::json::read_json_value_partial`]).
pub fn read_xml_partial(text: &str) -> (Option<EpcisDocument>, Vec<EpcisError>) {
    match read_xml_inner(text) {
        Ok(pair) => pair,
        Err(errors) => (None, errors),
    }
}

fn read_xml_inner(text: &str) -> Result<(Option<EpcisDocument>, Vec<EpcisError>), Vec<EpcisError>> {
    if text.len() > super::json::DOCUMENT_BYTES_MAX {
        return Err(xml_error("document too large"));
    }
    let (root, namespaces) = parse_tree(text)?;
    if root.local != "EPCISDocument" && root.local != "EPCISQueryDocument" {
        return Err(xml_error(format!(
            "root element {} is not EPCISDocument",
            root.local
        )));
    }
    let mut context = vec![Value::String(EPCIS_CONTEXT_URL.to_string())];
    for (prefix, iri) in &namespaces {
        if matches!(
            prefix.as_str(),
            "epcis" | "xsi" | "xsd" | "epcisq" | "epcismd"
        ) {
            continue;
        }
        let mut binding = Map::new();
        binding.insert(prefix.clone(), Value::String(json_iri(iri)));
        context.push(Value::Object(binding));
    }
    let mut json = Map::new();
    json.insert("@context".to_string(), Value::Array(context));
    json.insert(
        "type".to_string(),
        Value::String("EPCISDocument".to_string()),
    );
    json.insert(
        "schemaVersion".to_string(),
        Value::String(root.attribute("schemaVersion").unwrap_or("2.0").to_string()),
    );
    json.insert(
        "creationDate".to_string(),
        Value::String(
            root.attribute("creationDate")
                .unwrap_or_default()
                .to_string(),
        ),
    );
    let body = root
        .child("EPCISBody")
        .ok_or_else(|| xml_error("EPCISBody is required"))?;
    let events: Vec<Value> = events_of(body).into_iter().map(event_json).collect();
    let mut body_json = Map::new();
    body_json.insert("eventList".to_string(), Value::Array(events));
    json.insert("epcisBody".to_string(), Value::Object(body_json));
    let (document, errors) = read_json_value_partial(Value::Object(json));
    let document = document.map(|mut document| {
        document.schema_version = root.attribute("schemaVersion").unwrap_or("2.0").to_string();
        if let Some(header) = root.child("EPCISHeader") {
            document.header = Some(read_header(header));
        }
        document
    });
    Ok((document, errors))
}

fn read_header(node: &Node) -> Header {
    let mut header = Header::default();
    if let Some(sbdh) = node.child("StandardBusinessDocumentHeader") {
        header.sender = sbdh
            .child("Sender")
            .and_then(|s| s.child("Identifier"))
            .map(Node::text);
        header.receiver = sbdh
            .child("Receiver")
            .and_then(|s| s.child("Identifier"))
            .map(Node::text);
        header.instance_identifier = sbdh
            .child("DocumentIdentification")
            .and_then(|d| d.child("InstanceIdentifier"))
            .map(Node::text);
    }
    if let Some(master) = node.find("EPCISMasterData") {
        if let Some(list) = master.child("VocabularyList") {
            for vocabulary in list.children.iter().filter(|v| v.local == "Vocabulary") {
                let mut elements = Vec::new();
                if let Some(element_list) = vocabulary.child("VocabularyElementList") {
                    for element in element_list
                        .children
                        .iter()
                        .filter(|e| e.local == "VocabularyElement")
                    {
                        let attributes = element
                            .children
                            .iter()
                            .filter(|a| a.local == "attribute")
                            .map(|a| {
                                let value = if a.children.is_empty() {
                                    Ext::Text(a.text())
                                } else {
                                    super::json::ext_from_json(&extension_json(a))
                                };
                                (a.attribute("id").unwrap_or_default().to_string(), value)
                            })
                            .collect();
                        elements.push(VocabularyElement {
                            id: element.attribute("id").unwrap_or_default().to_string(),
                            attributes,
                        });
                    }
                }
                header.master_data.push(Vocabulary {
                    vocabulary_type: vocabulary.attribute("type").unwrap_or_default().to_string(),
                    elements,
                });
            }
        }
    }
    for child in &node.children {
        match child.local.as_str() {
            "dscsaTransactionStatement" => {
                header.transaction_statement = Some(TransactionStatement {
                    affirm_transaction_statement: child
                        .child("affirmTransactionStatement")
                        .is_some_and(|a| a.text() == "true"),
                    legal_notice: child.child("legalNotice").map(Node::text),
                });
            }
            "guidelineVersion" => header.guideline_version = Some(child.text()),
            "StandardBusinessDocumentHeader" | "extension" | "EPCISMasterData" => {}
            _ if child.namespace.is_some() => {
                header.extensions.push((
                    qualified(child),
                    super::json::ext_from_json(&extension_json(child)),
                ));
            }
            _ => {}
        }
    }
    header
}

// ---------------------------------------------------------------- writing

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            other => out.push(other),
        }
    }
    out
}

struct XmlOut {
    text: String,
    depth: usize,
}

impl XmlOut {
    fn line(&mut self, content: &str) {
        for _ in 0..self.depth {
            self.text.push_str("  ");
        }
        self.text.push_str(content);
        self.text.push('\n');
    }

    fn leaf(&mut self, name: &str, value: &str) {
        self.line(&format!("<{name}>{}</{name}>", escape(value)));
    }

    fn open(&mut self, name: &str) {
        self.line(&format!("<{name}>"));
        self.depth += 1;
    }

    fn close(&mut self, name: &str) {
        self.depth -= 1;
        self.line(&format!("</{name}>"));
    }

    fn ext(&mut self, name: &str, value: &Ext) {
        match value {
            Ext::Null => self.line(&format!("<{name}/>")),
            Ext::Bool(b) => self.leaf(name, &b.to_string()),
            Ext::Number(d) => self.leaf(name, d.as_str()),
            Ext::Text(t) => self.leaf(name, t),
            Ext::List(items) => {
                for item in items {
                    self.ext(name, item);
                }
            }
            Ext::Object(fields) => {
                self.open(name);
                for (key, child) in fields {
                    self.ext(key, child);
                }
                self.close(name);
            }
        }
    }

    fn list(&mut self, name: &str, item: &str, values: &[String]) {
        if values.is_empty() {
            return;
        }
        self.open(name);
        for value in values {
            self.leaf(item, value);
        }
        self.close(name);
    }

    fn quantities(&mut self, name: &str, list: &[QuantityElement]) {
        if list.is_empty() {
            return;
        }
        self.open(name);
        for q in list {
            self.open("quantityElement");
            self.leaf("epcClass", &q.epc_class);
            if let Some(quantity) = &q.quantity {
                self.leaf("quantity", quantity.as_str());
            }
            if let Some(uom) = &q.uom {
                self.leaf("uom", uom);
            }
            self.close("quantityElement");
        }
        self.close(name);
    }

    fn typed(&mut self, name: &str, item: &str, list: &[TypedId], kind_vocab: VocabKind) {
        if list.is_empty() {
            return;
        }
        self.open(name);
        for t in list {
            match &t.kind {
                Some(kind) => self.line(&format!(
                    "<{item} type=\"{}\">{}</{item}>",
                    escape(&urn_vocab(kind_vocab, kind)),
                    escape(&t.id)
                )),
                None => self.leaf(item, &t.id),
            }
        }
        self.close(name);
    }

    fn place(&mut self, name: &str, place: &Option<Place>) {
        if let Some(place) = place {
            self.open(name);
            self.leaf("id", &place.id);
            for (key, value) in &place.extensions {
                self.ext(key, value);
            }
            self.close(name);
        }
    }

    fn sensor_fields(&mut self, name: &str, fields: &SensorFields) {
        let mut attributes = String::new();
        let mut children = Vec::new();
        for (key, value) in &fields.fields {
            let text = match value {
                Ext::Bool(b) => b.to_string(),
                Ext::Number(d) => d.to_string(),
                Ext::Text(t) => t.clone(),
                _ => {
                    children.push((key, value));
                    continue;
                }
            };
            attributes.push_str(&format!(" {key}=\"{}\"", escape(&text)));
        }
        if children.is_empty() {
            self.line(&format!("<{name}{attributes}/>"));
        } else {
            self.line(&format!("<{name}{attributes}>"));
            self.depth += 1;
            for (key, value) in children {
                self.ext(key, value);
            }
            self.close(name);
        }
    }
}

fn xml_namespace(iri: &str) -> &str {
    if iri == CBV_MDA_JSON {
        CBV_MDA_XML
    } else {
        iri
    }
}

fn collect_prefixes(extensions: &[(String, Ext)], out: &mut Vec<String>) {
    for (key, value) in extensions {
        if let Some((prefix, _)) = key.split_once(':') {
            if !out.iter().any(|p| p == prefix) {
                out.push(prefix.to_string());
            }
        }
        match value {
            Ext::Object(fields) => collect_prefixes(fields, out),
            Ext::List(items) => {
                for item in items {
                    if let Ext::Object(fields) = item {
                        collect_prefixes(fields, out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Writes the document as EPCIS 2.0 XML.
pub fn write_xml(document: &EpcisDocument) -> String {
    let mut prefixes: Vec<String> = Vec::new();
    for event in &document.events {
        collect_prefixes(&event.extensions, &mut prefixes);
        collect_prefixes(&event.ilmd, &mut prefixes);
        for place in [&event.read_point, &event.biz_location]
            .into_iter()
            .flatten()
        {
            collect_prefixes(&place.extensions, &mut prefixes);
        }
        for element in &event.sensor_element_list {
            collect_prefixes(&element.extensions, &mut prefixes);
            for fields in element.metadata.iter().chain(element.reports.iter()) {
                collect_prefixes(&fields.fields, &mut prefixes);
            }
        }
        if let Some(ed) = &event.error_declaration {
            collect_prefixes(&ed.extensions, &mut prefixes);
        }
    }
    if let Some(header) = &document.header {
        collect_prefixes(&header.extensions, &mut prefixes);
        if header.transaction_statement.is_some() || header.guideline_version.is_some() {
            prefixes.push("gs1ushc".to_string());
        }
        if header.sender.is_some()
            || header.receiver.is_some()
            || header.instance_identifier.is_some()
        {
            prefixes.push("sbdh".to_string());
        }
    }
    let mut declarations = String::from(" xmlns:epcis=\"urn:epcglobal:epcis:xsd:2\"");
    let mut declared: Vec<String> = Vec::new();
    for prefix in prefixes {
        if declared.contains(&prefix) || prefix == "epcis" {
            continue;
        }
        let iri = match (document.namespace(&prefix), prefix.as_str()) {
            (Some(iri), _) => iri.to_string(),
            (None, "gs1ushc") => "http://epcis.gs1us.org/hc/ns".to_string(),
            (None, "sbdh") => {
                "http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader".to_string()
            }
            (None, _) => continue,
        };
        declarations.push_str(&format!(
            " xmlns:{prefix}=\"{}\"",
            escape(xml_namespace(&iri))
        ));
        declared.push(prefix);
    }
    let mut out = XmlOut {
        text: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
        depth: 0,
    };
    out.line(&format!(
        "<epcis:EPCISDocument{declarations} schemaVersion=\"2.0\" creationDate=\"{}\">",
        escape(&document.creation_date)
    ));
    out.depth += 1;
    if let Some(header) = &document.header {
        out.open("EPCISHeader");
        if header.sender.is_some()
            || header.receiver.is_some()
            || header.instance_identifier.is_some()
        {
            out.open("sbdh:StandardBusinessDocumentHeader");
            out.leaf("sbdh:HeaderVersion", "1.0");
            for (role, identifier) in [
                ("sbdh:Sender", &header.sender),
                ("sbdh:Receiver", &header.receiver),
            ] {
                if let Some(identifier) = identifier {
                    out.open(role);
                    out.line(&format!(
                        "<sbdh:Identifier Authority=\"GS1\">{}</sbdh:Identifier>",
                        escape(identifier)
                    ));
                    out.close(role);
                }
            }
            out.open("sbdh:DocumentIdentification");
            out.leaf("sbdh:Standard", "EPCglobal");
            out.leaf("sbdh:TypeVersion", "2.0");
            out.leaf(
                "sbdh:InstanceIdentifier",
                header.instance_identifier.as_deref().unwrap_or_default(),
            );
            out.leaf("sbdh:Type", "Events");
            out.leaf("sbdh:CreationDateAndTime", &document.creation_date);
            out.close("sbdh:DocumentIdentification");
            out.close("sbdh:StandardBusinessDocumentHeader");
        }
        if !header.master_data.is_empty() {
            out.open("EPCISMasterData");
            out.open("VocabularyList");
            for vocabulary in &header.master_data {
                out.line(&format!(
                    "<Vocabulary type=\"{}\">",
                    escape(&vocabulary.vocabulary_type)
                ));
                out.depth += 1;
                out.open("VocabularyElementList");
                for element in &vocabulary.elements {
                    out.line(&format!(
                        "<VocabularyElement id=\"{}\">",
                        escape(&element.id)
                    ));
                    out.depth += 1;
                    for (id, value) in &element.attributes {
                        let text = match value {
                            Ext::Text(t) => t.clone(),
                            Ext::Number(d) => d.to_string(),
                            Ext::Bool(b) => b.to_string(),
                            _ => String::new(),
                        };
                        out.line(&format!(
                            "<attribute id=\"{}\">{}</attribute>",
                            escape(id),
                            escape(&text)
                        ));
                    }
                    out.close("VocabularyElement");
                }
                out.close("VocabularyElementList");
                out.close("Vocabulary");
            }
            out.close("VocabularyList");
            out.close("EPCISMasterData");
        }
        if let Some(version) = &header.guideline_version {
            out.leaf("gs1ushc:guidelineVersion", version);
        }
        if let Some(statement) = &header.transaction_statement {
            out.open("gs1ushc:dscsaTransactionStatement");
            out.leaf(
                "gs1ushc:affirmTransactionStatement",
                &statement.affirm_transaction_statement.to_string(),
            );
            if let Some(notice) = &statement.legal_notice {
                out.leaf("gs1ushc:legalNotice", notice);
            }
            out.close("gs1ushc:dscsaTransactionStatement");
        }
        for (key, value) in &header.extensions {
            out.ext(key, value);
        }
        out.close("EPCISHeader");
    }
    out.open("EPCISBody");
    out.open("EventList");
    for event in &document.events {
        let name = event.event_type.name();
        out.open(name);
        out.leaf("eventTime", &event.event_time);
        if let Some(record_time) = &event.record_time {
            out.leaf("recordTime", record_time);
        }
        out.leaf("eventTimeZoneOffset", &event.event_time_zone_offset);
        if let Some(id) = &event.event_id {
            out.leaf("eventID", id);
        }
        for info in &event.certification_info {
            out.leaf("certificationInfo", info);
        }
        if let Some(ed) = &event.error_declaration {
            out.open("errorDeclaration");
            out.leaf("declarationTime", &ed.declaration_time);
            if let Some(reason) = &ed.reason {
                out.leaf("reason", &urn_vocab(VocabKind::ErrorReason, reason));
            }
            out.list(
                "correctiveEventIDs",
                "correctiveEventID",
                &ed.corrective_event_ids,
            );
            for (key, value) in &ed.extensions {
                out.ext(key, value);
            }
            out.close("errorDeclaration");
        }
        if let Some(parent) = &event.parent_id {
            out.leaf("parentID", parent);
        }
        out.list("epcList", "epc", &event.epc_list);
        out.list("childEPCs", "epc", &event.child_epcs);
        out.list("inputEPCList", "epc", &event.input_epc_list);
        out.quantities("inputQuantityList", &event.input_quantity_list);
        out.list("outputEPCList", "epc", &event.output_epc_list);
        out.quantities("outputQuantityList", &event.output_quantity_list);
        if let Some(id) = &event.transformation_id {
            out.leaf("transformationID", id);
        }
        if let Some(action) = event.action {
            out.leaf("action", action.name());
        }
        out.quantities("quantityList", &event.quantity_list);
        out.quantities("childQuantityList", &event.child_quantity_list);
        if let Some(step) = &event.biz_step {
            out.leaf("bizStep", &urn_vocab(VocabKind::BizStep, step));
        }
        if let Some(disposition) = &event.disposition {
            out.leaf(
                "disposition",
                &urn_vocab(VocabKind::Disposition, disposition),
            );
        }
        out.place("readPoint", &event.read_point);
        out.place("bizLocation", &event.biz_location);
        out.typed(
            "bizTransactionList",
            "bizTransaction",
            &event.biz_transaction_list,
            VocabKind::BizTransactionType,
        );
        out.typed(
            "sourceList",
            "source",
            &event.source_list,
            VocabKind::SourceDestinationType,
        );
        out.typed(
            "destinationList",
            "destination",
            &event.destination_list,
            VocabKind::SourceDestinationType,
        );
        if !event.sensor_element_list.is_empty() {
            out.open("sensorElementList");
            for element in &event.sensor_element_list {
                out.open("sensorElement");
                if let Some(metadata) = &element.metadata {
                    out.sensor_fields("sensorMetadata", metadata);
                }
                for report in &element.reports {
                    out.sensor_fields("sensorReport", report);
                }
                for (key, value) in &element.extensions {
                    out.ext(key, value);
                }
                out.close("sensorElement");
            }
            out.close("sensorElementList");
        }
        if let Some(pd) = &event.persistent_disposition {
            out.open("persistentDisposition");
            for d in &pd.set {
                out.leaf("set", &urn_vocab(VocabKind::Disposition, d));
            }
            for d in &pd.unset {
                out.leaf("unset", &urn_vocab(VocabKind::Disposition, d));
            }
            out.close("persistentDisposition");
        }
        if !event.ilmd.is_empty() {
            out.open("ilmd");
            for (key, value) in &event.ilmd {
                out.ext(key, value);
            }
            out.close("ilmd");
        }
        for (key, value) in &event.extensions {
            out.ext(key, value);
        }
        out.close(name);
    }
    out.close("EventList");
    out.close("EPCISBody");
    out.depth -= 1;
    out.line("</epcis:EPCISDocument>");
    out.text
}
