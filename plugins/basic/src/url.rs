//! Resolving an HTTP `Location` header against the URL that answered, so the checker can
//! follow redirects itself (the host's `http` import does not). Pure.

/// Split `scheme://authority` from the rest of an absolute http(s) URL.
fn origin(url: &str) -> Option<(&str, &str)> {
    let scheme_end = url.find("://")?;
    let scheme = &url[..scheme_end];
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    let after = scheme_end + 3;
    let end = url[after..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after + i);
    Some((&url[..end], &url[end..]))
}

/// The absolute URL a `Location` value points to, relative to `base`. `None` if `base` is
/// not an absolute http(s) URL or `location` is empty.
pub fn resolve(base: &str, location: &str) -> Option<String> {
    let location = location.trim();
    if location.is_empty() {
        return None;
    }
    let (origin, rest) = origin(base)?;
    if origin_of_absolute(location) {
        return Some(location.to_string());
    }
    if let Some(net_path) = location.strip_prefix("//") {
        let scheme = &base[..base.find("://")?];
        return Some(format!("{scheme}://{net_path}"));
    }
    if location.starts_with('/') {
        return Some(format!("{origin}{location}"));
    }
    // Path without query or fragment.
    let path = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    if location.starts_with('?') {
        let path = if path.is_empty() { "/" } else { path };
        return Some(format!("{origin}{path}{location}"));
    }
    let dir = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "/",
    };
    Some(format!("{origin}{dir}{location}"))
}

fn origin_of_absolute(location: &str) -> bool {
    let lower = location.get(..8).unwrap_or(location).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

#[cfg(test)]
mod tests {
    use super::resolve;

    #[test]
    fn locations_resolve_like_a_browser() {
        let base = "http://10.0.0.5:8080/app/index.php?x=1";
        let cases = [
            ("https://example.org/login", "https://example.org/login"),
            ("//cdn.example.org/a", "http://cdn.example.org/a"),
            ("/wp-admin/", "http://10.0.0.5:8080/wp-admin/"),
            ("setup.php", "http://10.0.0.5:8080/app/setup.php"),
            ("?page=2", "http://10.0.0.5:8080/app/index.php?page=2"),
            ("HTTP://Upper.example/", "HTTP://Upper.example/"),
        ];
        for (location, expected) in cases {
            assert_eq!(
                resolve(base, location).as_deref(),
                Some(expected),
                "{location}"
            );
        }
        assert_eq!(resolve("http://h", "x").as_deref(), Some("http://h/x"));
        assert_eq!(resolve("http://h", "").as_deref(), None);
        assert_eq!(resolve("ftp://h/", "/x").as_deref(), None);
    }
}
