package kafka

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mqgate/mqgate/internal/syncbuf"
	"github.com/mqgate/mqgate/internal/testcert"
	"github.com/mqgate/mqgate/sdk"
)

// testPKI is a CA and a certificate it signed for 127.0.0.1 and localhost,
// written to files as an operator would have them.
type testPKI struct {
	caFile, certFile, keyFile string
	server                    *tls.Config // serves the certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	ca := testcert.NewCA(t, "mqgate test CA")
	broker := ca.Server(t.TempDir(), "broker")
	return testPKI{
		caFile: ca.CertFile, certFile: broker.CertFile, keyFile: broker.KeyFile,
		server: &tls.Config{Certificates: []tls.Certificate{broker.TLS}, MinVersion: tls.VersionTLS12},
	}
}

// The files tls names are read when the config is checked, so a missing or
// malformed one is reported by mqgate check at its key.
func TestTLSFilesAreLoaded(t *testing.T) {
	pki := newTestPKI(t)
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsConfig := func(fields string) string {
		return fmt.Sprintf(`{"brokers": ["a:9093"], "tls": {%s}}`, fields)
	}
	t.Run("valid", func(t *testing.T) {
		cfg, errs := parseConfig([]byte(tlsConfig(fmt.Sprintf(`"ca_file": %q, "cert_file": %q, "key_file": %q, "server_name": "kafka.example"`,
			pki.caFile, pki.certFile, pki.keyFile))))
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		c := cfg.creds.tls
		if c == nil || c.RootCAs == nil || len(c.Certificates) != 1 || c.MinVersion != tls.VersionTLS12 || c.ServerName != "kafka.example" || c.InsecureSkipVerify {
			t.Fatalf("tls config = %+v; want the CA, one client certificate, TLS 1.2 at least, the server name", c)
		}
	})
	t.Run("an empty block still means TLS", func(t *testing.T) {
		cfg, errs := parseConfig([]byte(tlsConfig("")))
		if len(errs) > 0 || cfg.creds.tls == nil {
			t.Fatalf("tls: {} = %+v, %v; want TLS with the system's CAs", cfg.creds.tls, errs)
		}
	})
	for _, tc := range []struct {
		name, fields, key, msg string
	}{
		{"CA file without certificates", fmt.Sprintf(`"ca_file": %q`, garbage), "tls.ca_file", "no PEM certificate in " + garbage},
		{"certificate that is not one", fmt.Sprintf(`"cert_file": %q, "key_file": %q`, garbage, pki.keyFile), "tls.cert_file", "loading the client certificate and key"},
		{"key that is missing", fmt.Sprintf(`"cert_file": %q, "key_file": "/nonexistent/key.pem"`, pki.certFile), "tls.cert_file", "/nonexistent/key.pem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := parseConfig([]byte(tlsConfig(tc.fields)))
			if len(errs) != 1 || errs[0].Key != tc.key || !strings.Contains(errs[0].Msg, tc.msg) {
				t.Fatalf("parseConfig = %v; want one problem at %s saying %q", errs, tc.key, tc.msg)
			}
		})
	}
}

// No problem reported of a config repeats a password or token, whatever
// else is wrong with it.
func TestConfigErrorsNeverQuoteSecrets(t *testing.T) {
	const secret = "hunter2-s3cret"
	for _, config := range []string{
		`{"brokers": ["a:9092"], "sasl": {"mechanism": "OAUTHBEARER", "password": "` + secret + `", "token": "` + secret + `"}}`,
		`{"brokers": ["a:9092"], "sasl": {"mechanism": "KERBEROS", "username": "u", "password": "` + secret + `"}}`,
		`{"brokers": "embedded", "sasl": {"mechanism": "PLAIN", "username": "u", "password": "` + secret + `"}}`,
		`{"brokers": ["a:9092"], "sasl": {"mechanism": "PLAIN", "username": "u", "password": "` + secret + `", "secret": "` + secret + `"}}`,
	} {
		_, errs := parseConfig([]byte(config))
		if len(errs) == 0 {
			t.Fatalf("parseConfig(%s) found no problem", config)
		}
		if strings.Contains(errs.Error(), secret) {
			t.Errorf("parseConfig(%s) = %v; quotes the secret", config, errs)
		}
	}
}

// The users of secureCluster, and what each may do.
const (
	allowedTopic = "orders"
	deniedTopic  = "payroll"
	allowedGroup = "billing"
)

// secureCluster starts a one-broker kfake cluster that requires SASL and
// checks ACLs, with opts added. Its users, one per mechanism, may do
// anything with allowedTopic and allowedGroup and nothing else; the
// superuser "admin" may do anything.
func secureCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	grants := []kfake.ACL{
		{Resource: kmsg.ACLResourceTypeTopic, Name: allowedTopic, Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationAll, Allow: true},
		{Resource: kmsg.ACLResourceTypeGroup, Name: allowedGroup, Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationAll, Allow: true},
	}
	c, err := kfake.NewCluster(append([]kfake.Opt{
		kfake.NumBrokers(1),
		kfake.EnableSASL(),
		kfake.EnableACLs(),
		kfake.Superuser(mechScramSHA256, "admin", "admin-secret"),
		kfake.User(mechScramSHA256, "alice", "alice-secret", grants...),
		kfake.User(mechScramSHA512, "carol", "carol-secret", grants...),
		kfake.User(mechPlain, "bob", "bob-secret", grants...),
		kfake.SeedTopics(2, allowedTopic, deniedTopic),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// newExternal returns a backend configured for brokers with the extra
// config keys (JSON object members), logging to log.
func newExternal(t *testing.T, log *syncbuf.Buffer, brokers []string, extra string) *Backend {
	t.Helper()
	b := New(slog.New(slog.NewTextHandler(log, nil)))
	t.Cleanup(func() { _ = b.Close() })
	seeds, _ := json.Marshal(brokers)
	cfg := fmt.Sprintf(`{"brokers": %s, %s}`, seeds, extra)
	if err := b.Configure(context.Background(), []byte(cfg)); err != nil {
		t.Fatalf("Configure(%s): %v", cfg, err)
	}
	return b
}

func saslKeys(mechanism, user, password string) string {
	return fmt.Sprintf(`"sasl": {"mechanism": %q, "username": %q, "password": %q}`, mechanism, user, password)
}

// With each mechanism, a user produces to and consumes from what its ACLs
// allow, and is refused, as not allowed (13), a topic they do not.
func TestSASLProduceConsume(t *testing.T) {
	cluster := secureCluster(t)
	for _, tc := range []struct{ mechanism, user, password string }{
		{mechScramSHA256, "alice", "alice-secret"},
		{mechScramSHA512, "carol", "carol-secret"},
		{mechPlain, "bob", "bob-secret"},
	} {
		t.Run(tc.mechanism, func(t *testing.T) {
			var log syncbuf.Buffer
			b := newExternal(t, &log, cluster.ListenAddrs(), saslKeys(tc.mechanism, tc.user, tc.password))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := b.Health(ctx); err != nil {
				t.Fatalf("Health: %v", err)
			}
			value := []byte("from " + tc.user)
			res, err := b.Produce(ctx, []sdk.Record{{Topic: allowedTopic, Partition: 0, Value: value}})
			if err != nil || res[0].Err != nil {
				t.Fatalf("Produce to %s: %v, %+v", allowedTopic, err, res)
			}
			res, err = b.Produce(ctx, []sdk.Record{{Topic: deniedTopic, Partition: sdk.PartitionRandom, Value: value}})
			if err != nil {
				t.Fatalf("Produce to %s: %v", deniedTopic, err)
			}
			if e := res[0].Err; sdk.CodeOf(e) != sdk.CodeNotAllowed || !strings.Contains(e.Error(), "TOPIC_AUTHORIZATION_FAILED") {
				t.Fatalf("Produce to %s = %v (code %d); want code 13 saying topic authorization failed", deniedTopic, e, sdk.CodeOf(e))
			}

			c, err := b.Consume(ctx, sdk.Subscription{Group: allowedGroup, Topics: []string{allowedTopic}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for {
				ev, err := c.Poll(ctx, 100)
				if err != nil {
					t.Fatalf("Poll: %v", err)
				}
				if i := slicesIndexValue(ev.Records, value); i >= 0 {
					if err := c.Commit(ctx, []sdk.Offset{{Topic: allowedTopic, Qid: ev.Records[i].Qid, Offset: ev.Records[i].Offset + 1}}); err != nil {
						t.Fatalf("Commit: %v", err)
					}
					break
				}
			}
			fr, err := b.Fetch(ctx, sdk.FetchRequest{Positions: []sdk.FetchPosition{{Topic: allowedTopic, Qid: "0", Offset: 0}}, MaxRecords: 100, MaxWait: time.Second})
			if err != nil || fr[0].Err != nil || slicesIndexValue(fr[0].Records, value) < 0 {
				t.Fatalf("Fetch: %v, %+v; want the record produced", err, fr)
			}
			if strings.Contains(log.String(), tc.password) {
				t.Errorf("the log holds the password:\n%s", log.String())
			}
		})
	}
}

// slicesIndexValue is the index of the first record with value, or -1.
func slicesIndexValue(records []sdk.Record, value []byte) int {
	for i, r := range records {
		if bytes.Equal(r.Value, value) {
			return i
		}
	}
	return -1
}

// A password the cluster refuses makes health and every call code 17
// naming SASL authentication and the user, at once rather than at the
// call's deadline; it is logged once, and the password never.
func TestSASLWrongPassword(t *testing.T) {
	cluster := secureCluster(t)
	const password = "not-alices-password"
	var log syncbuf.Buffer
	b := newExternal(t, &log, cluster.ListenAddrs(), saslKeys(mechScramSHA256, "alice", password))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	wantAuth := func(what string, err error) {
		t.Helper()
		if sdk.CodeOf(err) != sdk.CodeUnavailable || !strings.Contains(err.Error(), "SASL authentication failed") || !strings.Contains(err.Error(), `"alice"`) {
			t.Fatalf("%s = %v (code %d); want code 17 saying SASL authentication failed for alice", what, err, sdk.CodeOf(err))
		}
	}
	wantAuth("Health", b.Health(ctx))
	for range 3 {
		_, err := b.Produce(ctx, []sdk.Record{{Topic: allowedTopic, Partition: sdk.PartitionRandom, Value: []byte("v")}})
		wantAuth("Produce", err)
	}
	_, err := b.ListOffsets(ctx, []string{allowedTopic}, allowedGroup)
	wantAuth("ListOffsets", err)
	_, err = b.Fetch(ctx, sdk.FetchRequest{Positions: []sdk.FetchPosition{{Topic: allowedTopic, Qid: "0", Offset: 0}}, MaxWait: time.Second})
	wantAuth("Fetch", err)
	wantAuth("Commit", b.Commit(ctx, allowedGroup, []sdk.Offset{{Topic: allowedTopic, Qid: "0", Offset: 1}}))
	if ctx.Err() != nil {
		t.Fatal("the calls ran into their deadline")
	}
	if n := strings.Count(log.String(), "kafka SASL authentication failed"); n != 1 {
		t.Errorf("the failure was logged %d times; want once:\n%s", n, log.String())
	}
	if strings.Contains(log.String(), password) {
		t.Errorf("the log holds the password:\n%s", log.String())
	}
}

// Over TLS, the brokers' certificate is checked against ca_file; without
// it, against the system's CAs, which do not know the test CA: that is
// code 17 naming the certificate problem.
func TestTLSWithCAFile(t *testing.T) {
	pki := newTestPKI(t)
	cluster := secureCluster(t, kfake.TLS(pki.server))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var log syncbuf.Buffer
	b := newExternal(t, &log, cluster.ListenAddrs(), fmt.Sprintf(`"tls": {"ca_file": %q}, %s`, pki.caFile, saslKeys(mechPlain, "bob", "bob-secret")))
	res, err := b.Produce(ctx, []sdk.Record{{Topic: allowedTopic, Partition: 0, Value: []byte("over tls")}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("Produce over TLS: %v, %+v", err, res)
	}

	untrusted := newExternal(t, &log, cluster.ListenAddrs(), `"tls": {}, `+saslKeys(mechPlain, "bob", "bob-secret"))
	err = untrusted.Health(ctx)
	if sdk.CodeOf(err) != sdk.CodeUnavailable || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Health without the CA = %v (code %d); want code 17 naming the certificate", err, sdk.CodeOf(err))
	}
}
