"""pushmail.push."""
