package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A Kafka cluster that requires SASL/SCRAM and checks ACLs, with the
// gateway's password kept out of plugins.yaml: the gateway produces where
// its user may write, is refused with 403/13 where it may not, and a wrong
// password makes readiness and produce 503/17 naming the SASL failure.
// No password shows in the log or in /v1/plugins.
func TestKafkaSASLWithSecretReferences(t *testing.T) {
	const password = "gateway-s3cret"
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.EnableSASL(),
		kfake.EnableACLs(),
		kfake.Superuser("SCRAM-SHA-256", "admin", "admin-s3cret"),
		kfake.User("SCRAM-SHA-256", "gateway", password, kfake.ACL{
			Resource: kmsg.ACLResourceTypeTopic, Name: "orders", Pattern: kmsg.ACLResourcePatternTypeLiteral,
			Operation: kmsg.ACLOperationAll, Allow: true,
		}),
		kfake.SeedTopics(2, "orders", "payroll"),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	addr := cluster.ListenAddrs()[0]
	broker := func(passwordRef string) *testBroker {
		return &testBroker{
			plugin: "kafka",
			config: fmt.Sprintf(`{brokers: [%q], sasl: {mechanism: SCRAM-SHA-256, username: gateway, password: %q}}`, addr, passwordRef),
			addr:   addr,
		}
	}
	noSecrets := func(t *testing.T, g *gateway, secrets ...string) {
		t.Helper()
		plugins, err := json.Marshal(g.plugins())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if strings.Contains(g.log.String(), s) || strings.Contains(string(plugins), s) {
				t.Errorf("the password %q shows in the log or /v1/plugins (%s)", s, plugins)
			}
		}
	}

	t.Run("password from a file", func(t *testing.T) {
		dir := t.TempDir()
		file := filepath.Join(dir, "kafka-password")
		if err := os.WriteFile(file, []byte(password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		g := startGateway(t, writeConfig(t, dir, broker("${file:"+file+"}"), options{}))
		g.produceOK("orders", `{"value": "allowed"}`)
		status, body := g.produce("payroll", `{"value": "not allowed"}`)
		checkAPIError(t, "produce to a topic the user has no ACL for", status, body, 403, 13, "TOPIC_AUTHORIZATION_FAILED")
		noSecrets(t, g, password)
	})

	t.Run("wrong password from the environment", func(t *testing.T) {
		const wrong = "not-the-gateway-password"
		t.Setenv("MQGATE_TEST_KAFKA_PASSWORD", wrong) // the gateway inherits it
		dir := t.TempDir()
		g := startGatewayUnready(t, writeConfig(t, dir, broker("${env:MQGATE_TEST_KAFKA_PASSWORD}"), options{}))
		var ready string
		waitFor(t, "/readyz to report the SASL failure", func() bool {
			resp, err := http.Get("http://" + g.httpAddr + "/readyz")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			ready = string(b)
			return resp.StatusCode == 503 && strings.Contains(ready, "SASL authentication failed")
		})
		if !strings.Contains(ready, `\"gateway\"`) && !strings.Contains(ready, `"gateway"`) {
			t.Errorf("/readyz = %s; want the user named", ready)
		}
		for range 3 {
			status, body := g.produce("orders", `{"value": "refused"}`)
			checkAPIError(t, "produce with a wrong password", status, body, 503, 17, "SASL authentication failed")
		}
		// Answered, not retried until the request's deadline: credentials
		// are not mended within a request.
		if n := g.metric("mqgate_produce_retries_total"); n != 0 {
			t.Errorf("the gateway retried produces %v times while the cluster refused its credentials; want 0", n)
		}
		if n := strings.Count(g.log.String(), "kafka SASL authentication failed;"); n != 1 {
			t.Errorf("the SASL failure was logged %d times; want once", n)
		}
		noSecrets(t, g, wrong, password)
	})
}
