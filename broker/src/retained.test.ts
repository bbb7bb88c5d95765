import { describe, expect, it } from 'vitest'
import { Readable } from 'node:stream'
import { indexRetained, topicMatches } from './retained.js'

describe('topicMatches', () => {
  it.each([
    ['a/+/c', 'a/b/c', true], ['a/#', 'a', true], ['a/#', 'a/b/c', true], ['#', '$SYS/x', false],
    ['+/x', '$SYS/x', false], ['$SYS/#', '$SYS/x', true], ['a/b', 'a/b/c', false], ['a/+', 'a', false],
  ])('%s vs %s → %s', (f, t, want) => {
    expect(topicMatches(f, t)).toBe(want)
  })
})

describe('indexRetained', () => {
  it('serves retained messages from memory after one load from the store, and follows updates and deletes', async () => {
    let scans = 0
    const disk = [{ topic: 'mm/nodes/a/status', payload: Buffer.from('online') }, { topic: 'mm/hub/main/status', payload: Buffer.from('online') }]
    const p = indexRetained({
      storeRetained: () => undefined,
      createRetainedStream: () => Readable.from([]),
      createRetainedStreamCombi: () => { scans++; return Readable.from(disk) },
    })
    const read = async (patterns: string[]) => {
      const out: string[] = []
      for await (const m of p.createRetainedStreamCombi(patterns)) out.push(`${m.topic}=${m.payload}`)
      return out
    }
    expect(await read(['mm/nodes/+/status'])).toEqual(['mm/nodes/a/status=online'])
    p.storeRetained({ topic: 'mm/nodes/a/status', payload: Buffer.from('offline') })
    p.storeRetained({ topic: 'mm/hub/main/status', payload: Buffer.alloc(0) })
    expect(await read(['mm/#'])).toEqual(['mm/nodes/a/status=offline'])
    expect(scans).toBe(1)
  })
})
