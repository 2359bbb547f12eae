"""Media: video and audio reading, segments and their frames, the filterbank, finding videos."""
