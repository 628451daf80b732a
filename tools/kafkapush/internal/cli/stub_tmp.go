package cli

import (
	"errors"

	"github.com/IBM/sarama"
	"github.com/spf13/cobra"

	"github.com/brook-dev/brook/tools/kafkapush/internal/lines"
	"github.com/brook-dev/brook/tools/kafkapush/internal/push"
)

var kafkaVersion = sarama.V3_6_0_0

func ceRecord(c *common, t string) func(lines.Line) (push.Record, error) {
	return func(lines.Line) (push.Record, error) { return push.Record{}, errors.New("todo") }
}
func newBookCommand(c *common) *cobra.Command { return &cobra.Command{Use: "book"} }

const defaultTopic = "bookshelf"
const defaultSource = "/brook/kafkapush"
