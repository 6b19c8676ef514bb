package bench

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// runTimeline runs a timeline (Session.Timeline) at a child: an engine
// phase whose counters and latencies are reported every interval of the
// window, each in its own evInterval, so that a perturbation's effect
// shows over time; evTimelineDone follows the last.
func (c *child) runTimeline(ctx context.Context, cmd command) error {
	if c.grp == nil {
		return errors.New("timeline before join")
	}
	interval := time.Duration(cmd.IntervalNs)
	if interval <= 0 || cmd.DurationNs < cmd.IntervalNs {
		return fmt.Errorf("timeline: interval %v, duration %v", interval, time.Duration(cmd.DurationNs))
	}
	name := cmd.Order
	if name == "" {
		name = c.cfg.Order
	}
	order, err := ParseOrder(name, c.cfg.Safe)
	if err != nil {
		return err
	}
	start := time.Unix(0, cmd.StartNs)
	from := start.Add(time.Duration(cmd.WarmupNs))
	to := from.Add(time.Duration(cmd.DurationNs))
	rec := c.engRec
	rec.window(stampOf(from), stampOf(to))

	sendCtx, stopSending := context.WithDeadline(ctx, to)
	defer stopSending()
	sendErr := make(chan error, 1)
	if c.cfg.Sending {
		go func() { sendErr <- c.sendEngine(sendCtx, c.senders, &c.sent, order, start, to) }()
	} else {
		sendErr <- nil
	}

	if err := sleepCtx(ctx, from); err != nil {
		return err
	}
	if _, err := rec.takeInterval(); err != nil { // nothing: the window starts now
		return err
	}
	prevAt, prevDelivered, prevSent := time.Now(), rec.delivered.Load(), c.sent.Load()
	n := int(time.Duration(cmd.DurationNs) / interval)
	for k := 1; k <= n; k++ {
		if err := sleepCtx(ctx, from.Add(time.Duration(k)*interval)); err != nil {
			return err
		}
		hist, err := rec.takeInterval()
		if err != nil {
			return err
		}
		at, delivered, sent := time.Now(), rec.delivered.Load(), c.sent.Load()
		c.send(event{Type: evInterval, Interval: &Interval{
			Index:        c.cfg.Index,
			Seq:          k,
			ElapsedNs:    at.Sub(prevAt).Nanoseconds(),
			Delivered:    delivered - prevDelivered,
			Sent:         sent - prevSent,
			Histogram:    hist,
			ViewSize:     int(c.viewSize.Load()),
			Removed:      c.removed.Load(),
			Incarnations: int(c.incarnations.Load()),
		}})
		prevAt, prevDelivered, prevSent = at, delivered, sent
	}
	if err := <-sendErr; err != nil {
		return err
	}
	c.send(event{Type: evTimelineDone})
	return nil
}
