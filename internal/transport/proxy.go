package transport

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// proxyFunc returns the transport's proxy function for Config.ProxyURL:
// the environment's proxy when it is empty.
func proxyFunc(raw string) (func(*http.Request) (*url.URL, error), error) {
	if raw == "" {
		return http.ProxyFromEnvironment, nil
	}
	u, problem := ParseProxyURL(raw)
	if problem != "" {
		return nil, fmt.Errorf("lease: Config.ProxyURL %q %s", RedactURL(raw), problem)
	}
	return http.ProxyURL(u), nil
}

// ParseProxyURL parses a proxy URL: http, https, socks5 or socks5h, with a
// host. problem says what is wrong with it, without its user information,
// for the caller to put after the (redacted) URL in an error.
func ParseProxyURL(raw string) (u *url.URL, problem string) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "is not a URL"
	}
	switch u.Scheme {
	case "http", "https", "socks5", "socks5h":
	default:
		return nil, fmt.Sprintf("has scheme %q; want http, https, socks5 or socks5h", u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, "has no host"
	}
	return u, ""
}

// RedactURL returns a URL (or something meant to be one) without the
// password of its user information.
func RedactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		if _, ok := u.User.Password(); ok {
			return u.Redacted()
		}
		return raw
	}
	start := 0
	if i := strings.Index(raw, "://"); i >= 0 {
		start = i + len("://")
	}
	if j := strings.LastIndex(raw[start:], "@"); j >= 0 {
		return raw[:start] + "xxxxx" + raw[start+j:]
	}
	return raw
}
