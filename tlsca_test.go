package lease

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TLSCA is a certificate authority made for one test, which issues server
// and client certificates. The tests of this package and of the external
// test package (transport_tls_server_test.go) share it.
type TLSCA struct {
	Cert *x509.Certificate
	PEM  []byte // Cert, PEM-encoded
	key  *ecdsa.PrivateKey
}

var tlsSerial atomic.Int64

func tlsKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return key
}

// NewTLSCA makes a certificate authority named name.
func NewTLSCA(t *testing.T, name string) *TLSCA {
	t.Helper()
	key := tlsKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(tlsSerial.Add(1)),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &TLSCA{Cert: cert, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}
}

// issue signs a leaf certificate from tmpl and returns it and its key as PEM.
func (ca *TLSCA) issue(t *testing.T, tmpl *x509.Certificate) (certPEM, keyPEM []byte) {
	t.Helper()
	key := tlsKey(t)
	tmpl.SerialNumber = big.NewInt(tlsSerial.Add(1))
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// Serving returns a server certificate for the given DNS names and IPs.
func (ca *TLSCA) Serving(t *testing.T, dns []string, ips ...net.IP) tls.Certificate {
	t.Helper()
	certPEM, keyPEM := ca.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		DNSNames:    dns,
		IPAddresses: ips,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	return cert
}

// Localhost returns a server certificate for 127.0.0.1 and localhost.
func (ca *TLSCA) Localhost(t *testing.T) tls.Certificate {
	t.Helper()
	return ca.Serving(t, []string{"localhost"}, net.IPv4(127, 0, 0, 1), net.IPv6loopback)
}

// Client returns a client certificate for user cn, as PEM.
func (ca *TLSCA) Client(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	return ca.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// ClientFiles writes a client certificate for cn and its key to files in a
// temporary directory of t, and returns their paths.
func (ca *TLSCA) ClientFiles(t *testing.T, cn string) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	ca.WriteClient(t, cn, certFile, keyFile)
	return certFile, keyFile
}

// WriteClient writes a client certificate for cn and its key, as PEM, to
// certFile and keyFile.
func (ca *TLSCA) WriteClient(t *testing.T, cn, certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM := ca.Client(t, cn)
	require.NoError(t, os.WriteFile(certFile, certPEM, 0o600))
	require.NoError(t, os.WriteFile(keyFile, keyPEM, 0o600))
}
