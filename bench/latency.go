package bench

import (
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram range, in microseconds, and precision.
const (
	histLowUs  = 1
	histHighUs = 10_000_000
	histDigits = 3
)

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histLowUs, histHighUs, histDigits)
}

// recorder counts one member's deliveries in one phase and records the
// one-way latency of those that arrive inside the measured window.
// deliver is called from the engine's delivery goroutines (one per
// group: several with Config.Groups) or the baseline's receive loop; the
// phase controller reads the count at any time and the histogram once
// the window is over.
type recorder struct {
	delivered atomic.Uint64
	from, to  atomic.Int64 // measured window, monotonic ns (stampOf)

	mu    sync.Mutex
	hist  *hdrhistogram.Histogram
	spare *hdrhistogram.Histogram // takeInterval's next histogram
}

func newRecorder() *recorder {
	return &recorder{hist: newHistogram()}
}

// deliver counts one message whose first 8 bytes are its send time
// (stampNow), or 0 for a message outside the sample (sampleEvery): that
// one is only counted, without reading the clock.
func (r *recorder) deliver(payload []byte) {
	r.delivered.Add(1)
	if len(payload) < 8 {
		return
	}
	sent := int64(binary.LittleEndian.Uint64(payload))
	if sent == 0 {
		return
	}
	now := stampNow()
	if now < r.from.Load() || now >= r.to.Load() {
		return
	}
	us := (now - sent) / 1000
	// Out-of-range values would make the histogram build an error.
	us = min(max(us, histLowUs), histHighUs)
	r.mu.Lock()
	r.hist.RecordValue(us)
	r.mu.Unlock()
}

// window clears the histogram and sets the measured window.
func (r *recorder) window(from, to int64) {
	r.mu.Lock()
	r.hist.Reset()
	r.mu.Unlock()
	r.from.Store(from)
	r.to.Store(to)
}

// encode returns the histogram in the compact, base64 HdrHistogram form.
func (r *recorder) encode() (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, err := r.hist.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	return string(b), err
}

// takeInterval returns what the histogram recorded since the last call
// (or the window's start), encoded as encode does, and starts an empty
// one: a timeline's per-interval latencies. The swap holds the lock for
// a moment only; the encoding happens outside it.
func (r *recorder) takeInterval() (string, error) {
	next := r.spare
	if next == nil {
		next = newHistogram()
	}
	r.mu.Lock()
	h := r.hist
	r.hist = next
	r.mu.Unlock()
	b, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	h.Reset()
	r.spare = h
	return string(b), err
}
