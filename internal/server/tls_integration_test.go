//go:build integration

package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with serial to
// certPath and keyPath, as a Secret mount would hold them.
func writeCert(t *testing.T, certPath, keyPath string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "lastcall"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// Key first, then the certificate: the watcher pairs them on each change.
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

// TestAPIServesTLSAndPicksUpARenewedCertificate: with --tls-cert-file and
// --tls-key-file the state API answers only TLS, with that certificate;
// when the files change (a cert-manager renewal), new connections get the
// new certificate without a restart.
func TestAPIServesTLSAndPicksUpARenewedCertificate(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeCert(t, certPath, keyPath, 1)
	p := startServerProcess(t, "--tls-cert-file", certPath, "--tls-key-file", keyPath)
	url := "https://" + p.state + "/v1/state/team-a/"
	served := func() (int64, int) {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}} // the serial is what is checked
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+controlToken)
		resp, err := c.Do(req)
		if err != nil {
			t.Logf("GET %s: %v", url, err)
			return 0, 0
		}
		defer resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64(), resp.StatusCode
	}
	if serial, code := served(); serial != 1 || code != http.StatusOK {
		t.Fatalf("over TLS: certificate %d, status %d; want 1, 200", serial, code)
	}
	resp, err := http.Get("http://" + p.state + "/v1/state/team-a/")
	if err == nil {
		body := make([]byte, 200)
		n, _ := resp.Body.Read(body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body[:n]), "HTTPS") {
			t.Fatalf("plain HTTP to the TLS listener: %d %q", resp.StatusCode, body[:n])
		}
	}
	// The preStop helper trusts the server's issuer with --ca-file.
	save := filepath.Join(dir, "state.txt")
	if err := os.WriteFile(save, []byte("offset=1"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := helper(t, buildPrestop(t), "--budget=20s", "--save", save, "--state-url", "https://"+p.state, "--key", "tls-check",
		"--namespace", "team-a", "--pod", "p", "--token-file", writeToken(t, controlToken), "--ca-file", certPath,
		"--termination-message-path=none", "--console=none")
	if code != 0 {
		t.Fatalf("lastcall-prestop --ca-file against the TLS server: exit %d\n%s", code, out)
	}
	writeCert(t, certPath, keyPath, 2)
	clustertest.Eventually(t, 30*time.Second, func(context.Context) (bool, error) {
		serial, _ := served()
		return serial == 2, nil
	}, "the renewed certificate to be served")
}
