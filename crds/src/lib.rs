//! The Dialtone custom resources, group `dialtone.io`, version `v1alpha1`.
//!
//! Every kind carries `observedGeneration` and `metav1.Condition`-shaped
//! conditions with `Ready` as the summary. Doc comments on fields become the
//! `kubectl explain` text, so they are written for platform engineers.

pub mod agent;
pub mod campaign;
pub mod common;
pub mod generate;
pub mod objective;
pub mod provider;
pub mod tenant;

pub use agent::{Agent, AgentSpec, AgentStatus};
pub use campaign::{Campaign, CampaignSpec, CampaignStatus};
pub use common::{Condition, ConditionUpdate, Locale, SecretKeyRef};
pub use objective::{Objective, ObjectiveSpec, ObjectiveStatus};
pub use provider::{ClusterProvider, Provider, ProviderSpec, ProviderStatus};
pub use tenant::{Tenant, TenantSpec, TenantStatus};

use kube::CustomResourceExt;

/// The API group of every Dialtone kind.
pub const GROUP: &str = "dialtone.io";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";
/// The printer category shared by every kind: `kubectl get dialtone`.
pub const CATEGORY: &str = "dialtone";

/// Every CustomResourceDefinition of the project, in a stable order.
pub fn all_crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    vec![
        Tenant::crd(),
        ClusterProvider::crd(),
        Provider::crd(),
        Objective::crd(),
        Agent::crd(),
        Campaign::crd(),
    ]
}
