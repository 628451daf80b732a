package cli_test

import (
	"log"
	"os"
	"testing"

	"github.com/IBM/sarama"
)

// TestMain: SARAMA_LOG=1 go test ... prints sarama's own log, for debugging producer issues.
func TestMain(m *testing.M) {
	if os.Getenv("SARAMA_LOG") != "" {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.LstdFlags)
	}
	os.Exit(m.Run())
}
