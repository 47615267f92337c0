//! ESP32 devices over MQTT: the device topic protocol and its access rules
//! (`topic`), the embedded MQTT 3.1.1 broker core (`broker`), device claim with
//! HMAC-SHA256 and single-use nonces (`claim`) and the credentials issued at
//! claim (`credential`). All sans-IO: the actors crate drives them.

pub mod broker;
pub mod claim;
pub mod credential;
pub mod topic;

pub use topic::{
    claimant_may_publish, claimant_may_subscribe, may_publish, may_subscribe,
    principal_may_publish, principal_may_retain, principal_may_subscribe, DeviceId, Topic,
    TopicError, MAX_DEVICE_ID, MAX_REQUEST_ID,
};
