package events_test

import (
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/kit/kafkatest"
	"github.com/twmb/franz-go/pkg/kfake"
)

func TestGroupTimingDefaults(t *testing.T) {
	base := events.ConsumerOptions{Brokers: []string{"x:9092"}, Group: "g", Topics: []string{"t"}, Handler: newRecorder().handler}
	cfg := events.ConsumerConfig(base)
	if s, h := cfg.Consumer.Group.Session.Timeout, cfg.Consumer.Group.Heartbeat.Interval; s != 6*time.Second || h != 2*time.Second {
		t.Errorf("defaults: session %v, heartbeat %v; want 6s, 2s", s, h)
	}
	o := base
	o.SessionTimeout = 900 * time.Millisecond // heartbeat follows a short session
	if h := events.ConsumerConfig(o).Consumer.Group.Heartbeat.Interval; h != 300*time.Millisecond {
		t.Errorf("heartbeat with a 900ms session = %v, want 300ms", h)
	}
	o = base
	o.SessionTimeout, o.HeartbeatInterval = 3*time.Second, 3*time.Second
	if _, err := events.NewConsumer(o); err == nil || !strings.Contains(err.Error(), "HeartbeatInterval") {
		t.Errorf("heartbeat = session accepted: %v", err)
	}
}

// A broker with real Kafka's default group.min.session.timeout.ms (6s; kfake's default too,
// hence tools/devstack's) accepts the default timings. A member that dies without leaving
// the group (static membership makes sarama skip the LeaveGroup on close, as kill -9 would)
// holds its partitions until the session timeout; then the other member takes them over.
func TestDefaultTimingsAndTakeoverAfterKill(t *testing.T) {
	c := kafkatest.New(t, kafkatest.WithKfakeOptions(kfake.GroupMinSessionTimeout(6*time.Second)))
	c.CreateTopic(t, "takeover", 2)
	p := newPublisher(t, c)
	defaults := func(rec *recorder, instance string) events.ConsumerOptions {
		o := consumerOpts(c, "g-takeover", "takeover", rec.handler)
		o.SessionTimeout, o.HeartbeatInterval = 0, 0
		if instance != "" {
			o.Configure = func(cfg *sarama.Config) { cfg.Consumer.Group.InstanceId = instance }
		}
		return o
	}
	victimRec, survivorRec := newRecorder(), newRecorder()
	victim := start(t, defaults(victimRec, "victim"))
	publishN(t, p, "takeover", 4, 4)
	waitUntil(t, "4 handled by the first member", func() bool { return victimRec.distinct() == 4 })
	survivor := start(t, defaults(survivorRec, ""))
	waitUntil(t, "both members assigned", func() bool {
		m, a := groupMembers(t, c, "g-takeover")
		return m == 2 && a == 2 && survivor.Status().State == events.StateRunning
	})

	victim.kill(t) // no LeaveGroup: the broker notices only when the session times out
	killed := time.Now()
	ids := publishN(t, p, "takeover", 20, 20) // keys on both partitions
	waitUntil(t, "the survivor handled all 20, on both partitions", func() bool {
		for _, id := range ids {
			if survivorRec.times(id) == 0 {
				return false
			}
		}
		return true
	})
	t.Logf("the survivor handled the dead member's partition %v after the kill (session timeout %v)",
		time.Since(killed).Round(100*time.Millisecond), events.DefaultSessionTimeout)
}
