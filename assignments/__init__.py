"""Everything that makes one assignment gradable: one subpackage per assignment."""
