//! The SDK setup both functions start with: the trust store read from one
//! file, then the configuration from the environment with their timeouts.
//! Part of every cold start, so kept cheap.

use aws_config::SdkConfig;

/// Points the TLS trust store at the system's CA bundle file alone, unless
/// `SSL_CERT_FILE` or `SSL_CERT_DIR` is set already.
///
/// Without it the SDK's client loads, at start-up, the bundle file *and*
/// every file of the certificate directory (rustls-native-certs 0.8): the
/// same CAs again, one `stat`, `open` and PEM parse each. That was half of
/// the resolver's start-up CPU on a Debian image with 292 files there (5.1
/// ms, 2.5 ms without; bench/README.md). The bundle is what
/// `update-ca-certificates` / `update-ca-trust` build from that directory,
/// on Amazon Linux as elsewhere. A CA added to the directory
/// without rebuilding the bundle needs `SSL_CERT_DIR` set explicitly.
///
/// Call it first thing in `main`, before the runtime starts any thread: it
/// sets an environment variable.
pub fn prefer_cert_bundle() {
    if std::env::var_os("SSL_CERT_FILE").is_some() || std::env::var_os("SSL_CERT_DIR").is_some() {
        return;
    }
    if let Some(bundle) = openssl_probe::probe().cert_file {
        std::env::set_var("SSL_CERT_FILE", bundle);
    }
}

/// The SDK configuration from the environment (Region, credentials,
/// `AWS_ENDPOINT_URL`...) with [`crate::calls::sdk_timeouts`]: the SDK sets
/// no attempt or operation timeout by default, and a hung call would wait
/// for the Lambda timeout and fail the whole batch.
pub async fn load() -> SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(crate::calls::sdk_timeouts())
        .load()
        .await
}
