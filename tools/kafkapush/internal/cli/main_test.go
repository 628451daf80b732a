package cli_test

// TestMain: SARAMA_LOG=1 go test ... prints sarama's own log, for debugging producer issues.

import (
	"log"
	"os"
	"testing"

	"github.com/IBM/sarama"
)

func TestMain(m *testing.M) {
	if os.Getenv("SARAMA_LOG") != "" {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.LstdFlags)
	}
	os.Exit(m.Run())
}
