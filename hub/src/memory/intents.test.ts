import { describe, expect, it } from 'vitest'
import { matchMemoryIntent, secondPerson } from './intents.js'

describe('memory intents', () => {
  it('tells remember, recall and forget apart, and leaves other turns alone', () => {
    expect(matchMemoryIntent('Remember that the keys are in the drawer.')).toEqual({ type: 'remember', fact: 'the keys are in the drawer' })
    expect(matchMemoryIntent('remember my bike is in the shed')).toEqual({ type: 'remember', fact: 'my bike is in the shed' })
    expect(matchMemoryIntent('what did I tell you about the keys?')).toEqual({ type: 'recall', about: 'the keys' })
    expect(matchMemoryIntent('where are my keys')).toEqual({ type: 'recall', about: 'keys' })
    expect(matchMemoryIntent('where is the umbrella')).toEqual({ type: 'recall', about: 'umbrella' })
    expect(matchMemoryIntent('forget that')).toEqual({ type: 'forget' })
    expect(matchMemoryIntent('forget about the keys')).toEqual({ type: 'forget', about: 'the keys' })
    expect(matchMemoryIntent('turn on the kitchen light')).toBeUndefined()
    expect(matchMemoryIntent('remember that')).toBeUndefined()
    expect(matchMemoryIntent('what time is it')).toBeUndefined()
  })

  it('says a fact back in the second person', () => {
    expect(secondPerson('my keys are in the drawer')).toBe('your keys are in the drawer')
    expect(secondPerson("I'm allergic to nuts")).toBe("you're allergic to nuts")
  })
})
