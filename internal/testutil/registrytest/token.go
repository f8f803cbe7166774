package registrytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

const (
	tokenService = "registrytest"
	tokenIssuer  = "registrytest-issuer"
)

// tokenServer issues the JWTs distribution's token auth verifies: ES256,
// signed by a key whose self-signed certificate is the registry's
// rootcertbundle and travels in the "x5c" header.
type tokenServer struct {
	user, pass string
	key        *ecdsa.PrivateKey
	certDER    []byte
	certPEM    []byte
	realm      string
}

func startTokenServer(t testing.TB, user, pass string, tlsConf *tls.Config) (*tokenServer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := selfSigned(key)
	if err != nil {
		return nil, err
	}
	ts := &tokenServer{
		user: user, pass: pass, key: key, certDER: der,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if tlsConf != nil {
		l = tls.NewListener(l, tlsConf)
		scheme = "https"
	}
	ts.realm = fmt.Sprintf("%s://%s/token", scheme, l.Addr())
	mux := http.NewServeMux()
	mux.HandleFunc("/token", ts.serveToken)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ts, nil
}

type access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

func (ts *tokenServer) serveToken(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(ts.user)) != 1 ||
		subtle.ConstantTimeCompare([]byte(pass), []byte(ts.pass)) != 1 {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("WWW-Authenticate", `Basic realm="registrytest"`)
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"invalid username or password"}]}`))
		return
	}
	var grants []access
	for _, scope := range r.URL.Query()["scope"] {
		for s := range strings.FieldsSeq(scope) {
			// type:name:actions; a name may hold a port ("host:5000/x") so
			// split at the first and the last colon.
			first, last := strings.Index(s, ":"), strings.LastIndex(s, ":")
			if first < 0 || first == last {
				continue
			}
			grants = append(grants, access{
				Type:    s[:first],
				Name:    s[first+1 : last],
				Actions: strings.Split(s[last+1:], ","),
			})
		}
	}
	tok, err := ts.sign(user, r.URL.Query().Get("service"), grants)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token":        tok,
		"access_token": tok,
		"expires_in":   300,
		"issued_at":    time.Now().UTC().Format(time.RFC3339),
	})
}

func (ts *tokenServer) sign(subject, audience string, grants []access) (string, error) {
	if audience == "" {
		audience = tokenService
	}
	if grants == nil {
		grants = []access{}
	}
	now := time.Now()
	header, err := json.Marshal(map[string]any{
		"typ": "JWT",
		"alg": "ES256",
		"x5c": []string{base64.StdEncoding.EncodeToString(ts.certDER)},
	})
	if err != nil {
		return "", err
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	claims, err := json.Marshal(map[string]any{
		"iss":    tokenIssuer,
		"sub":    subject,
		"aud":    audience,
		"exp":    now.Add(5 * time.Minute).Unix(),
		"nbf":    now.Add(-time.Minute).Unix(),
		"iat":    now.Unix(),
		"jti":    fmt.Sprintf("%x", jti),
		"access": grants,
	})
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	sum := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, ts.key, sum[:])
	if err != nil {
		return "", err
	}
	// JWS ES256 signatures are r and s, each left-padded to 32 bytes.
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + enc.EncodeToString(sig), nil
}
