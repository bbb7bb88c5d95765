import { describe, expect, it } from 'vitest'
import { SentenceChunker } from './chunker.js'

describe('SentenceChunker', () => {
  it('closes a sentence once whitespace follows its end mark', () => {
    const c = new SentenceChunker()
    expect(c.push('Hello there.')).toEqual([]) // could still be "there.com"
    expect(c.push(' How')).toEqual(['Hello there.'])
    expect(c.push(' are you? I am')).toEqual(['How are you?'])
    expect(c.flush()).toEqual(['I am'])
    expect(c.flush()).toEqual([])
  })

  it('streamed token by token gives the same sentences as all at once', () => {
    const text = 'It is sunny! Take a hat... And "water." Bye'
    const whole = new SentenceChunker()
    const a = [...whole.push(text), ...whole.flush()]
    const byChar = new SentenceChunker()
    const b: string[] = []
    for (const ch of text) b.push(...byChar.push(ch))
    b.push(...byChar.flush())
    expect(b).toEqual(a)
    expect(a).toEqual(['It is sunny!', 'Take a hat...', 'And "water."', 'Bye'])
  })

  it('a long run with no sentence end is cut at a space so TTS is not starved', () => {
    const c = new SentenceChunker(40)
    const out = c.push('one two three four five six seven eight nine ten eleven twelve')
    expect(out).toHaveLength(1)
    expect(out[0]!.length).toBeLessThanOrEqual(40)
    expect(out[0]).toBe('one two three four five six seven eight')
    expect(c.flush()).toEqual(['nine ten eleven twelve'])
  })

  it('a long word with no space is cut hard at maxChars', () => {
    const c = new SentenceChunker(30)
    expect(c.push('x'.repeat(45))).toEqual(['x'.repeat(30)])
  })

  it('drops pieces with nothing speakable', () => {
    const c = new SentenceChunker()
    expect(c.push('... !? ')).toEqual([])
    expect(c.push('Ok. ')).toEqual(['Ok.'])
    expect(c.flush()).toEqual([])
  })
})
