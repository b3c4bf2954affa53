//! Typed calls to the server's JSON API.

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RolloutSummary {
    pub id: String,
    pub title: String,
}

pub async fn rollouts() -> Result<Vec<RolloutSummary>, String> {
    let response = gloo_net::http::Request::get("/api/rollouts")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.ok() {
        return Err(format!("the server answered {}", response.status()));
    }
    response.json().await.map_err(|e| e.to_string())
}
