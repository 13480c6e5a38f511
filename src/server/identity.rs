use axum::http::HeaderValue;

/// Which replica this process is: `POD_NAME`, else the hostname.
#[derive(Debug, Clone)]
pub struct Identity {
    name: String,
}

impl Identity {
    pub fn resolve(pod_name: Option<&str>) -> Identity {
        let name = pod_name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .or_else(hostname)
            .unwrap_or_else(|| "unknown".to_owned());
        Identity { name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name as a header value; characters a header cannot carry become `?`.
    pub fn header_value(&self) -> HeaderValue {
        let printable: String = self
            .name
            .chars()
            .map(|c| if c.is_ascii_graphic() { c } else { '?' })
            .collect();
        HeaderValue::from_str(&printable).unwrap_or(HeaderValue::from_static("unknown"))
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}
