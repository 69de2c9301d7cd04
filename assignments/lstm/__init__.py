"""The LSTM assignment: hidden cases and probes, the misconception catalogue, the samples."""
from assignments.lstm.exercises import EXERCISES
from assignments.lstm.misconceptions import load_catalogue
from assignments.lstm.samples import SAMPLES

CATALOGUE = load_catalogue()
