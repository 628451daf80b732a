package cli

import (
	"github.com/spf13/cobra"
)

func newBookCommand(c *common) *cobra.Command { return &cobra.Command{Use: "book"} }

const defaultTopic = "bookshelf"
const defaultSource = "/brook/kafkapush"
