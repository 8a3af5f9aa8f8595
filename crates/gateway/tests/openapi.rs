//! The checked-in `docs/openapi.json` is the document the gateway serves.
//! Regenerate: `UPDATE_DOCS=1 cargo test -p cordon-gateway --test openapi`.

#[test]
fn checked_in_openapi_document_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let generated = format!("{}\n", cordon_gateway::api::openapi::document());
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/openapi.json is stale: run `UPDATE_DOCS=1 cargo test -p cordon-gateway --test openapi`"
    );
    let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
    for path in [
        "/api/sessions",
        "/api/sessions/{id}/messages",
        "/api/sessions/{id}/stream",
        "/api/sessions/{id}/changes",
        "/api/sessions/{id}/undo",
        "/api/approvals/{id}",
        "/api/grants/{id}/revoke",
        "/api/audit",
        "/api/audit/verify",
        "/api/login",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
    assert_eq!(
        doc["paths"]["/api/login"]["post"]["security"],
        serde_json::json!([]),
        "login must be documented as unauthenticated"
    );
}
