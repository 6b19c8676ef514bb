package metrics

import (
	"context"
	"expvar"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cohort-vs/cohort/engine"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func newGroup(t *testing.T, cfg engine.Config) ([]*engine.Engine, []*engine.Group) {
	var engines []*engine.Engine
	var seeds []string
	for i := 0; i < 2; i++ {
		e, err := engine.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		engines = append(engines, e)
		seeds = append(seeds, e.Addr().String())
	}
	var groups []*engine.Group
	for _, e := range engines {
		g, err := e.Join(context.Background(), "scraped", seeds, engine.Handlers{Deliver: func(engine.Message) {}})
		if err != nil {
			t.Fatal(err)
		}
		groups = append(groups, g)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(groups[0].View().Members) != 2 || len(groups[1].View().Members) != 2 {
		if time.Now().After(deadline) {
			t.Fatal("no view of both members")
		}
		time.Sleep(time.Millisecond)
	}
	return engines, groups
}

// value reads one series from a Prometheus text exposition.
func value(t *testing.T, body, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no series %s in:\n%s", series, body)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A scrape of /metrics shows the group's view and its counters moving.
func TestScrape(t *testing.T) {
	engines, groups := newGroup(t, engine.DefaultConfig())
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(engines[1]))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	scrape := func() string {
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	before := scrape()
	if v := value(t, before, `cohort_group_members{group="scraped"}`); v != 2 {
		t.Fatalf("members %v, want 2", v)
	}
	if v := value(t, before, `cohort_group_slowest_member_lag{group="scraped"}`); v < 0 || v > 2 {
		t.Fatalf("slowest member's lag %v, want a share of the window", v)
	}
	d0 := value(t, before, `cohort_group_messages_delivered_total{group="scraped"}`)
	for i := 0; i < 1000; i++ {
		if err := groups[0].Send(context.Background(), engine.FIFO, []byte("counted")); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		after := scrape()
		if value(t, after, `cohort_group_messages_delivered_total{group="scraped"}`) >= d0+1000 {
			if !strings.Contains(after, `cohort_engine_dropped_total{reason="auth_failed"} 0`) {
				t.Fatalf("no engine drop series:\n%s", after)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivered counter did not move by 1000:\n%s", after)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestExpvar(t *testing.T) {
	engines, _ := newGroup(t, engine.DefaultConfig())
	PublishExpvar("cohort_test", engines[0])
	v := expvar.Get("cohort_test").String()
	if !strings.Contains(v, `"scraped"`) || !strings.Contains(v, `"Delivered"`) {
		t.Fatalf("expvar: %s", v)
	}
}

// With MeasureLatency the sender's scrape has a delivery-latency histogram
// whose count follows the sampled messages; without, there is none.
func TestLatencyHistogramScraped(t *testing.T) {
	cfg := engine.DefaultConfig()
	cfg.MeasureLatency = true
	engines, groups := newGroup(t, cfg)
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(engines[0]))
	for i := 0; i < 64*10; i++ {
		if err := groups[0].Send(context.Background(), engine.Total, []byte("timed")); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() != "cohort_group_delivery_latency_seconds" {
				continue
			}
			h := f.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() == 10 {
				b := h.GetBucket()
				if len(b) != len(engine.LatencyBuckets) || b[len(b)-1].GetCumulativeCount() > 10 || h.GetSampleSum() <= 0 {
					t.Fatalf("histogram: %v", h)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no histogram of 10 samples: %v", families)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
