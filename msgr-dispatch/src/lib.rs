//! DispatchQueue, Throttle and DelayedDelivery: what sits between the pipes that read
//! messages and the application that handles them.
