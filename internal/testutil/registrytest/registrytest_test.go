package registrytest

import (
	"net/http"
	"testing"
)

func TestStart(t *testing.T) {
	tests := []struct {
		name       string
		opts       []Option
		wantStatus int
	}{
		{"plain", nil, http.StatusOK},
		{"htpasswd", []Option{WithHtpasswd("alice", "secret")}, http.StatusUnauthorized},
		{"token", []Option{WithTokenAuth("bob", "secret")}, http.StatusUnauthorized},
		{"tls", []Option{WithTLS()}, http.StatusOK},
		{"tls+token", []Option{WithTLS(), WithTokenAuth("bob", "secret")}, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := Start(t, tt.opts...)
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: s.TLSConfig()}}
			defer c.CloseIdleConnections()
			resp, err := c.Get(s.URL() + "/v2/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("GET /v2/: status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantStatus == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
			if s.Host != s.Addr {
				t.Fatalf("Host %q != Addr %q", s.Host, s.Addr)
			}
		})
	}
}
