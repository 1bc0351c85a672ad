//! What the server tells SCIM clients about itself (RFC 7643 §5–7): the service provider configuration, the
//! resource types, and the schemas with exactly the attributes Aula keeps.

use super::{ENTERPRISE, GROUP, MAX_RESULTS, USER};
use serde_json::{Value, json};

const SPC: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// An attribute's description with the defaults most attributes share (a single, optional, read-write,
/// case-insensitive text that is returned by default).
fn attr(name: &str, kind: &str) -> Value {
    json!({
        "name": name, "type": kind, "multiValued": false, "description": "", "required": false,
        "caseExact": false, "mutability": "readWrite", "returned": "default", "uniqueness": "none",
    })
}

fn text(name: &str, description: &str) -> Value {
    let mut a = attr(name, "string");
    a["description"] = json!(description);
    a
}

fn with(mut a: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().into_iter().flatten() {
        a[k] = v.clone();
    }
    a
}

fn complex(name: &str, description: &str, multi: bool, subs: Vec<Value>) -> Value {
    with(
        attr(name, "complex"),
        json!({"description": description, "multiValued": multi, "subAttributes": subs}),
    )
}

fn typed_values(name: &str, description: &str, types: &[&str]) -> Value {
    complex(
        name,
        description,
        true,
        vec![
            with(text("value", "The value."), json!({"required": true})),
            text("display", "A label for the value."),
            with(text("type", "Its kind."), json!({"canonicalValues": types})),
            with(
                attr("primary", "boolean"),
                json!({"description": "The preferred value."}),
            ),
        ],
    )
}

fn reference(name: &str, to: &[&str], mutability: &str) -> Value {
    with(
        attr(name, "reference"),
        json!({"referenceTypes": to, "mutability": mutability, "description": "The URI of the resource."}),
    )
}

fn user_attributes() -> Vec<Value> {
    vec![
        with(
            text(
                "userName",
                "Unique within the academy. Also the e-mail address when no e-mail is given.",
            ),
            json!({"required": true, "uniqueness": "server"}),
        ),
        complex(
            "name",
            "The person's name; Aula's display name comes from displayName, else formatted, else given and family name.",
            false,
            vec![
                text("formatted", "The full name."),
                text("familyName", "Family name."),
                text("givenName", "Given name."),
                text("middleName", "Middle name."),
                text("honorificPrefix", "Title before the name."),
                text("honorificSuffix", "Suffix after the name."),
            ],
        ),
        text("displayName", "The name Aula shows."),
        text("nickName", "A casual name."),
        text("title", "Job title."),
        text("userType", "Kind of person (employee, contractor, …)."),
        text(
            "preferredLanguage",
            "Language tag (en, de-CH): the language of the person's pages and mail.",
        ),
        text("locale", "Language tag used when preferredLanguage is absent."),
        text("timezone", "Time zone (IANA name)."),
        with(
            attr("active", "boolean"),
            json!({"description": "false suspends the account (nothing is erased); true reactivates it."}),
        ),
        // Every Aula account has an e-mail address: required here (a userName that is an address also does).
        with(
            typed_values(
                "emails",
                "E-mail addresses; the primary one (else the first) is the account's address.",
                &["work", "home", "other"],
            ),
            json!({"required": true}),
        ),
        typed_values(
            "phoneNumbers",
            "Telephone numbers.",
            &["work", "home", "mobile", "fax", "pager", "other"],
        ),
        with(
            complex(
                "groups",
                "The organizations the person belongs to (change them through the groups).",
                true,
                vec![
                    with(text("value", "The group's id."), json!({"mutability": "readOnly"})),
                    reference("$ref", &["Group"], "readOnly"),
                    with(text("display", "The group's name."), json!({"mutability": "readOnly"})),
                    with(
                        text("type", "direct"),
                        json!({"mutability": "readOnly", "canonicalValues": ["direct"]}),
                    ),
                ],
            ),
            json!({"mutability": "readOnly"}),
        ),
    ]
}

fn enterprise_attributes() -> Vec<Value> {
    vec![
        text(
            "employeeNumber",
            "Kept in the profile field employee_number where the academy defines it.",
        ),
        text("costCenter", "Cost center."),
        text("organization", "Organization."),
        text("division", "Division."),
        text(
            "department",
            "Kept in the profile field department where the academy defines it.",
        ),
        complex(
            "manager",
            "The person's line manager, a user of the same academy.",
            false,
            vec![
                text("value", "The manager's id."),
                reference("$ref", &["User"], "readWrite"),
                with(
                    text("displayName", "The manager's name."),
                    json!({"mutability": "readOnly"}),
                ),
            ],
        ),
    ]
}

fn group_attributes() -> Vec<Value> {
    vec![
        with(
            text("displayName", "The organization's name (unique among its siblings)."),
            json!({"required": true}),
        ),
        complex(
            "members",
            "The people in the organization (people only; organizations nest through Aula's API).",
            true,
            vec![
                with(text("value", "The person's id."), json!({"mutability": "immutable"})),
                reference("$ref", &["User"], "immutable"),
                with(
                    text("type", "Always User."),
                    json!({"mutability": "immutable", "canonicalValues": ["User"]}),
                ),
            ],
        ),
    ]
}

/// The schemas, each as a Schema resource.
pub fn schemas(base: &str) -> Vec<Value> {
    [
        (USER, "User", "A person of the academy.", user_attributes()),
        (
            ENTERPRISE,
            "EnterpriseUser",
            "What an employer knows of a person.",
            enterprise_attributes(),
        ),
        (GROUP, "Group", "An organization of the academy.", group_attributes()),
    ]
    .into_iter()
    .map(|(id, name, description, attributes)| {
        json!({
            "schemas": [SCHEMA], "id": id, "name": name, "description": description, "attributes": attributes,
            "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")},
        })
    })
    .collect()
}

/// The resource types.
pub fn resource_types(base: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": [RESOURCE_TYPE], "id": "User", "name": "User", "endpoint": "/Users",
            "description": "People of the academy", "schema": USER,
            "schemaExtensions": [{"schema": ENTERPRISE, "required": false}],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")},
        }),
        json!({
            "schemas": [RESOURCE_TYPE], "id": "Group", "name": "Group", "endpoint": "/Groups",
            "description": "Organizations of the academy", "schema": GROUP, "schemaExtensions": [],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group")},
        }),
    ]
}

/// The service provider configuration.
pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": [SPC],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken", "name": "SCIM token", "primary": true,
            "description": "A bearer token an academy admin creates under /api/v1/scim-tokens; it opens this academy's SCIM endpoint only.",
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
    })
}
