"""Chinese: amounts grouped by threes with commas (1,250,000), as the UN's Chinese documents write them. Django's
Chinese format groups by fours with no separator, so an amount read 1250000 with nothing to count its digits by."""

THOUSAND_SEPARATOR = ","
NUMBER_GROUPING = 3
