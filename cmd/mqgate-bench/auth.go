package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mqgate/mqgate/internal/testjwt"
)

// produceHTTPAuth: what authentication costs a request. One gateway with
// auth on (API keys, JWTs from a JWKS file, an anonymous principal and an
// ACL of three rules) takes the produce-http load three times: with no
// credential (the anonymous principal), with an API key, and with a JWT;
// the gateway side is the JWT run. The direct side is the same load on a
// gateway that differs only in having no auth: and acl: sections, so the
// ratio is what JWT auth costs in throughput. Both reach the main
// gateway's embedded broker as an external cluster. The report gives each
// run's rate and the server CPU per message of the gateway process, which
// is where authentication runs.
var produceHTTPAuth = scenario{
	name:      "produce-http-auth",
	about:     "sync HTTP produce with an API key, a JWT and no credential on a gateway with auth on, vs the same on a gateway without auth",
	kafkaOnly: true,
	ownCPU:    true,
	adjust: func(p params) params {
		// One message per request: authentication is per request, so
		// its cost shows where requests are many and small.
		p.batch = 1
		p.n = min(p.n, 30000)
		return p
	},
	gateway: func(ctx context.Context, e *env, p params) (result, error) {
		dir := filepath.Join(e.dir, "auth")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return result{}, err
		}
		iss, err := testjwt.New("bench")
		if err != nil {
			return result{}, err
		}
		jwksPath := filepath.Join(dir, "jwks.json")
		if err := os.WriteFile(jwksPath, iss.JWKS, 0o644); err != nil {
			return result{}, err
		}
		token, err := iss.Sign(jwt.MapClaims{"iss": "https://idp.bench", "aud": "mqgate", "sub": "bench-jwt", "exp": time.Now().Add(24 * time.Hour).Unix()})
		if err != nil {
			return result{}, err
		}
		const key = "bench-api-key-0123456789"
		sum := sha256.Sum256([]byte(key))
		cmd, httpAddr, err := startPeerGateway(e, "auth", fmt.Sprintf(`auth:
  api_keys: [{principal: bench-key, sha256: %q}]
  jwt: {jwks_file: %q, issuer: "https://idp.bench", audience: mqgate}
  anonymous: {principal: bench-anonymous}
acl:
  - {principal: "bench-*", operations: [produce], topics: ["bench-*"]}
  - {principal: "bench-*", effect: deny, operations: [produce], topics: [bench-frozen]}
  - {principal: ops, operations: [metrics, read-stats, admin]}
`, hex.EncodeToString(sum[:]), jwksPath))
		if err != nil {
			return result{}, err
		}
		defer stopCmd(cmd)

		// The broker is the main gateway's embedded one, which this
		// gateway reaches as an external cluster: topics are created
		// through the main gateway.
		if err := postAuthorized(http.DefaultClient, "http://"+e.httpAddr+"/v1/topics/bench-http-auth/messages", "", []byte(`{"value":"v"}`)); err != nil {
			return result{}, fmt.Errorf("creating the topic: %w", err)
		}
		var notes []string
		var last result
		for _, run := range []struct{ name, authorization string }{
			{"no credential (anonymous)", ""},
			{"API key", "Bearer " + key},
			{"JWT (ES256)", "Bearer " + token},
		} {
			r, err := authRun(cmd.Process.Pid, httpAddr, run.name, run.authorization, p)
			if err != nil {
				return result{}, err
			}
			notes = append(notes, r.note)
			last = r
		}
		last.note = "| credential | msgs/s | gateway CPU µs/msg | failures |\n|---|---:|---:|---:|\n" + strings.Join(notes, "\n")
		return last, nil
	},
	direct: func(ctx context.Context, e *env, p params) (result, error) {
		cmd, httpAddr, err := startPeerGateway(e, "noauth", "")
		if err != nil {
			return result{}, err
		}
		defer stopCmd(cmd)
		return authRun(cmd.Process.Pid, httpAddr, "no auth: section (same gateway otherwise)", "", p)
	},
	report: func(g, d result) {
		fmt.Printf("\nproduce-http-auth: per credential (gateway side is the JWT run; direct is the same gateway without auth:):\n\n%s\n%s\n", g.note, d.note)
	},
}

// authRun produces p's load through the gateway at httpAddr (process pid)
// with the Authorization header given (none when empty), after a warm-up;
// its note is a table row of the rate and the gateway's CPU per message.
func authRun(pid int, httpAddr, name, authorization string, p params) (result, error) {
	bodies, err := jsonBodies(p)
	if err != nil {
		return result{}, err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: p.concurrency * 2}}
	url := "http://" + httpAddr + "/v1/topics/bench-http-auth/messages"
	post := func(body []byte) error { return postAuthorized(client, url, authorization, body) }
	if err := post(bodies[0]); err != nil { // opens the connections
		return result{}, fmt.Errorf("%s: warm-up: %w", name, err)
	}
	cpu0 := procCPU(pid)
	r := runCalls(p, func(_, call int) error { return post(bodies[call%len(bodies)]) })
	cpu := procCPU(pid) - cpu0
	r.note = fmt.Sprintf("| %s | %.0f | %.0f | %d |", name, r.rate(), float64(cpu.Microseconds())/float64(max(r.msgs, 1)), r.failures)
	return r, nil
}

// postAuthorized posts body with the Authorization header given (none
// when empty) and wants 200.
func postAuthorized(client *http.Client, url, authorization string, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%d: %s", resp.StatusCode, b)
	}
	return nil
}

// startPeerGateway starts a gateway named name whose cluster is the main
// gateway's embedded broker, reached as an external one, with extra
// top-level YAML; it returns the process and its HTTP address.
func startPeerGateway(e *env, name, extra string) (*exec.Cmd, string, error) {
	dir := filepath.Join(e.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	httpAddr := freeAddr()
	cmd, err := launch(e.bin, filepath.Join(dir, "plugins.yaml"), peerConfig(e, dir, httpAddr)+extra, filepath.Join(dir, "mqgate.log"), httpAddr, nil)
	return cmd, httpAddr, err
}

// peerConfig is the config of a gateway in dir, listening for HTTP on
// httpAddr, whose cluster is the main gateway's embedded broker, reached
// as an external one, with more plugins ("NAME: {...}") beside kafka;
// top-level keys may follow it.
func peerConfig(e *env, dir, httpAddr string, morePlugins ...string) string {
	plugins := "kafka: " + e.kafkaPlugin()
	for _, p := range morePlugins {
		plugins += ", " + p
	}
	return fmt.Sprintf(`version: 1
plugins: {%s}
clusters:
  local: {plugin: kafka, config: {brokers: [%q]}}
default_cluster: local
http: {listen: %q}
thrift: {producer_listen: %q, consumer_listen: %q}
producer: {spool_dir: %q}
delay: {enabled: false}
`, plugins, e.kafkaAddr, httpAddr, freeAddr(), freeAddr(), filepath.Join(dir, "spool"))
}
