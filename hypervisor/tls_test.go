package hypervisor_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/hypervisor"
)

// With enable_tls the UI and API are HTTPS (HTTP/2 for a client that
// offers it) and the session cookie is Secure; a missing key file fails
// at start and says how to make one.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t)
	os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600)
	_, hsk := cipher.GenerateKeyPair()
	cfg := hypervisor.DefaultConfig(hsk)
	cfg.HTTPAddr, cfg.DBPath = "127.0.0.1:0", filepath.Join(dir, "hv.db")
	cfg.EnableTLS, cfg.TLSCertFile, cfg.TLSKeyFile = true, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "missing.pem")
	if _, err := hypervisor.New(&cfg, hypervisor.Options{}); err == nil || !strings.Contains(err.Error(), "openssl req") {
		t.Fatalf("a missing key file: %v", err)
	}
	cfg.TLSKeyFile = filepath.Join(dir, "key.pem")
	h := runHV(t, &cfg)
	if !strings.HasPrefix(h.url, "https://") {
		t.Fatalf("URL %s", h.url)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	body, _ := json.Marshal(map[string]string{"code": h.SetupCode(), "password": testPassword})
	resp, err := hc.Post(h.url+"/api/setup", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("setup over TLS: %d %s", resp.StatusCode, resp.Proto)
	}
	cookie := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"skywire_session=", "HttpOnly", "SameSite=Strict", "Secure"} {
		if !strings.Contains(cookie, want) {
			t.Fatalf("cookie %q lacks %s", cookie, want)
		}
	}
}

func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}
