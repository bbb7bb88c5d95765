// The grammar recogniser and its early endpoint live in @mirrormesh/speech (grammar-recognizer.ts):
// the hub's online early end of turn uses the same criteria.
export {
  OfflineRecognizer, LevelMeter, grammarWords, parseBacktrace, phoneCounts, squeezedWord, syllables, writeGrammarDictionary,
  type AlignedWord, type OfflineRecognizerOptions, type Recognition, type RecognitionSession, type SessionHooks, type UnconfidentReason,
} from '@mirrormesh/speech'
