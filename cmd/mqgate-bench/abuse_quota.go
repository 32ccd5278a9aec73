package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// probeQuotaFlood has one principal (flood) send 3,000 single-message
// produces from 16 connections, past its quota of 100 messages/s, while
// another (calm) sends 20 a second under the same quota: flood must be
// refused with 429/15 and Retry-After beyond its burst and rate, and calm
// must not be refused once.
func probeQuotaFlood(e *env) (bool, string, error) {
	const rate, burst, floods, calmEvery = 100, 100, 3000, 50 * time.Millisecond
	hash := func(k string) string { h := sha256.Sum256([]byte(k)); return hex.EncodeToString(h[:]) }
	g, err := startAbuseGateway(e, "quota", gatewaySetup{extra: fmt.Sprintf(`auth:
  api_keys: [{principal: flood, sha256: %q}, {principal: calm, sha256: %q}]
  anonymous: {principal: visitor}
quotas:
  - {principal: flood, messages_per_second: %d, burst: %d}
  - {principal: calm, messages_per_second: %d, burst: %d}
`, hash("k-flood"), hash("k-calm"), rate, burst, rate, burst)})
	if err != nil {
		return false, "", err
	}
	defer g.stop()
	// Basic credentials in the URL: the principal is the user, the key
	// the password.
	as := func(user, key string) string {
		return strings.Replace(g.url("/v1/topics/abuse-quota/messages"), "http://", "http://"+user+":"+key+"@", 1)
	}
	flood, calm := as("flood", "k-flood"), as("calm", "k-calm")
	if a, err := call("POST", calm, `{"value":"m"}`); err != nil || a.status != 200 {
		return false, "", fmt.Errorf("producing as calm: %v %s", err, a.body)
	}

	var (
		accepted, refused, other atomic.Int64
		calmOK, calmFailed       atomic.Int64
		firstOther, firstRefusal atomic.Value
		stop                     = make(chan struct{})
		calmDone                 sync.WaitGroup
	)
	calmDone.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(calmEvery):
			}
			if a, err := call("POST", calm, `{"value":"c"}`); err == nil && a.status == 200 {
				calmOK.Add(1)
			} else {
				calmFailed.Add(1)
			}
		}
	})
	jobs := make(chan struct{})
	var workers sync.WaitGroup
	for range 16 {
		workers.Go(func() {
			for range jobs {
				a, err := call("POST", flood, `{"value":"f"}`)
				switch {
				case err == nil && a.status == 200:
					accepted.Add(1)
				case err == nil && a.status == 429 && a.code == 15 && a.retryAfter != "" && strings.Contains(a.body, `principal \"flood\"`):
					refused.Add(1)
					firstRefusal.CompareAndSwap(nil, a.body+" Retry-After: "+a.retryAfter)
				default:
					other.Add(1)
					firstOther.CompareAndSwap(nil, fmt.Sprintf("%d %s %v", a.status, a.body, err))
				}
			}
		})
	}
	start := time.Now()
	for range floods {
		jobs <- struct{}{}
	}
	close(jobs)
	workers.Wait()
	took := time.Since(start)
	close(stop)
	calmDone.Wait()

	// What the buckets allow in the time the flood took, with a second's
	// slack for requests counted just before start and after the end.
	allowed := int64(burst + rate*(took.Seconds()+1))
	counted := int64(g.metric(`mqgate_quota_refused_total{limit="messages_per_second"}`))
	held := accepted.Load() <= allowed && refused.Load() > 0 && other.Load() == 0 && counted == refused.Load() &&
		calmFailed.Load() == 0 && calmOK.Load() > 0
	figures := fmt.Sprintf("flood: %d requests in %s, %d accepted (%.0f/s; the quota allows at most %d), %d refused 429/15 with Retry-After, %d otherwise; "+
		"mqgate_quota_refused_total %d; calm: %d accepted, %d refused",
		floods, took.Round(10*time.Millisecond), accepted.Load(), float64(accepted.Load())/took.Seconds(), allowed,
		refused.Load(), other.Load(), counted, calmOK.Load(), calmFailed.Load())
	if v := firstRefusal.Load(); v != nil {
		figures += "; first refusal: " + v.(string)
	}
	if v := firstOther.Load(); v != nil {
		figures += "; first other answer: " + v.(string)
	}
	return held, figures, nil
}
