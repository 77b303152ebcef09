//! `builtin`: works offline. Delivers nothing and records the request it
//! stands for in the job's result, so demos and tests can see what a real
//! vendor would have received.

use async_trait::async_trait;
use serde_json::json;

use crate::adapter::{Adapter, Delivery, DeliveryError, Receipt};

/// The offline adapter.
#[derive(Clone, Copy, Debug, Default)]
pub struct Builtin;

#[async_trait]
impl Adapter for Builtin {
    async fn deliver(&self, d: &Delivery) -> Result<Receipt, DeliveryError> {
        Ok(Receipt {
            reference: Some(format!("builtin:{}", d.idempotency_key)),
            detail: json!({
                "recorded": {
                    "action": dialtone_engine::workflow::action_name(d.action),
                    "params": d.params,
                    "missing": d.missing,
                }
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialtone_crds::agent::WorkflowAction;
    use std::collections::BTreeMap;

    #[tokio::test]
    async fn records_the_request_it_stands_for() {
        let d = Delivery {
            job_id: 1,
            idempotency_key: "c/w/t".into(),
            tenant: "t".into(),
            workflow: "w".into(),
            trigger: "callCompleted".into(),
            action: WorkflowAction::Sms,
            params: BTreeMap::from([("to".to_owned(), "+61400000000".to_owned())]),
            missing: vec![],
            call: Default::default(),
            event: json!({}),
        };
        let r = Builtin.deliver(&d).await.expect("builtin never fails");
        assert_eq!(r.reference.as_deref(), Some("builtin:c/w/t"));
        assert_eq!(r.detail["recorded"]["action"], "sms");
        assert_eq!(r.detail["recorded"]["params"]["to"], "+61400000000");
    }
}
